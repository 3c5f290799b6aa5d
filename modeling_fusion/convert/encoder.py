"""Fuse the layers of a transformers audio encoder (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper, CLAP, AST, ...).

    python -m modeling_fusion.convert encoder --checkpoint facebook/wav2vec2-base --output w2v-fusion --layers 6 12

The checkpoint is a transformers folder or Hub id (Whisper: its encoder is kept; CLAP: its audio tower);
the weights are copied and the folder keeps the encoder's own feature extractor.
"""

import logging

from ..cli.model_source import check_model_source
from ..modeling_encoder_fusion import EncoderFusionModel, load_encoder_feature_extractor
from .save_folder import save_model_folder

logger = logging.getLogger(__name__)


def convert(checkpoint, output, layers=None, pooling="mean+max"):
    """Encoder folder or Hub id -> Hub-ready EncoderFusionModel folder `output` (layers: hidden-state numbers,
    0 = the input to block 1; default the last). Raises ValueError when the encoder or its extractor cannot load."""
    check_model_source(checkpoint)  # a missing folder or an unreachable Hub id: one line, at once
    try:
        model = EncoderFusionModel.from_encoder_pretrained(checkpoint, fusion_layers=layers, pooling=pooling)
        extractor = load_encoder_feature_extractor(checkpoint)
    except OSError as error:
        raise ValueError(f"cannot load the encoder {checkpoint}: {error}\nGive a transformers folder with config.json, "
                         "weights and preprocessor_config.json, or a Hub id (offline: `hf download ID --local-dir DIR` "
                         "where there is network, then pass DIR).") from None
    config = model.config
    logger.info(f"{config.encoder_type} encoder with {config.num_layers} layers, fusion of {config.fusion_layers} "
                f"-> {config.hidden_size}-d")
    return save_model_folder(model, extractor, output)


def add_arguments(parser):
    parser.add_argument("--layers", type=int, nargs="+",
                        help="hidden-state numbers to fuse: 0 = the input to block 1, l = block l (default: the last)")
    parser.add_argument("--pooling", default="mean+max", help="mean+max (default), mean, max; AST also cls+dist")


def run(args):
    return convert(args.checkpoint, args.output, args.layers, args.pooling)
