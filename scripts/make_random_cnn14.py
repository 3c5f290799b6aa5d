"""Save a CNN14-Fusion#3#6 folder with random weights: proves the evaluation pipeline, means nothing.

    python scripts/make_random_cnn14.py --output models/cnn14-random [--seed 0]
"""

import argparse

import torch

from modeling_fusion.configuration_cnn14 import Cnn14FusionConfig
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.modeling_cnn14 import Cnn14ForAudioClassification
from modeling_fusion.convert.save_folder import save_model_folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the random initialisation")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    model = Cnn14ForAudioClassification(Cnn14FusionConfig()).eval()
    save_model_folder(model, Cnn14FeatureExtractor(), args.output)
    print(f"saved a random-weight CNN14-Fusion#3#6 to {args.output}")


if __name__ == "__main__":
    main()
