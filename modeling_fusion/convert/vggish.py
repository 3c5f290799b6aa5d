"""Convert VGGish PyTorch checkpoints: torchvggish (`vggish-10086976.pth`) or tcvrick (`pytorch_vggish.pth`).

Both ports hold TF VGGish's weights with the same conv keys (`features.N`) and flatten fc1's input
NHWC as TF does; they differ in the FC prefix (`embeddings.N` for torchvggish, `fc.N` for tcvrick's
port, which the paper's evaluation used). The layout is read from the keys.
"""

import logging
from pathlib import Path

import numpy as np
import torch

from .checkpoints import load_torch_checkpoint
from ..configuration_vggish import VGGishFusionConfig
from ..feature_extraction_vggish import VGGishFeatureExtractor
from ..modeling_vggish import VGGishFusionModel
from .save_folder import save_model_folder

logger = logging.getLogger(__name__)

CONV_INDICES = (0, 3, 6, 8, 11, 13)
FC_INDICES = (0, 2, 4)
FC_PREFIXES = {"torchvggish": "embeddings", "tcvrick": "fc"}
PCA_KEYS = ("pca_eigen_vectors", "pca_means")


def expected_keys(layout):
    names = [f"features.{i}" for i in CONV_INDICES] + [f"{FC_PREFIXES[layout]}.{i}" for i in FC_INDICES]
    return {f"{name}.{kind}" for name in names for kind in ("weight", "bias")}


def detect_layout(state_dict):
    """"torchvggish" or "tcvrick", from the FC keys; a clear error for anything else."""
    keys = set(state_dict)
    for layout in FC_PREFIXES:
        if expected_keys(layout) <= keys:
            return layout
    found = ", ".join(sorted(keys)[:8])
    raise ValueError(
        "not a VGGish checkpoint in a known layout: expected torchvggish keys (features.{0,3,...,13}.*, "
        "embeddings.{0,2,4}.*) or tcvrick's pytorch_vggish.pth keys (features.*, fc.{0,2,4}.*); "
        f"found {len(keys)} keys starting with: {found}"
    )


def convert_state_dict(state_dict, layout):
    """Port keys -> ours (`features.N`, `fc.N`); every key must be consumed."""
    prefix = FC_PREFIXES[layout]
    extra = set(state_dict) - expected_keys(layout)
    if extra:
        raise ValueError(f"unexpected keys in a {layout} VGGish checkpoint: {sorted(extra)}")
    return {
        ("fc." + key[len(prefix) + 1 :]) if key.startswith(prefix + ".") else key: value.float()
        for key, value in state_dict.items()
    }


def load_pca(path):
    """PCA parameters from torchvggish's `vggish_pca_params-970ea276.pth` or TF's `vggish_pca_params.npz`."""
    if not Path(path).exists():
        raise FileNotFoundError(f"PCA parameters not found: {path}")
    params = np.load(path) if str(path).endswith(".npz") else load_torch_checkpoint(path)
    if not all(key in params for key in PCA_KEYS):
        raise ValueError(f"{path}: expected the arrays {PCA_KEYS}, found {sorted(params)}")
    matrix, means = (torch.as_tensor(np.asarray(params[key]), dtype=torch.float32) for key in PCA_KEYS)
    if matrix.shape != (128, 128) or means.numel() != 128:
        raise ValueError(f"{path}: PCA shapes {tuple(matrix.shape)}, {tuple(means.shape)}; expected (128, 128), (128,)")
    return {"postprocessor.pca_eigen_vectors": matrix, "postprocessor.pca_means": means.reshape(128)}


def convert(checkpoint, output, pca=None, layers=(10, 15)):
    """Checkpoint file (+ optional PCA file) -> Hub-ready folder `output` (VGGishFusionModel + extractor)."""
    state_dict = load_torch_checkpoint(checkpoint)
    layout = detect_layout(state_dict)
    weights = convert_state_dict(state_dict, layout)
    if pca is not None:
        weights.update(load_pca(pca))
    config = VGGishFusionConfig(fusion_layers=list(layers), postprocess=pca is not None)
    model = VGGishFusionModel(config).eval()
    model.load_state_dict(weights, strict=True)
    logger.info(f"VGGish ({layout} layout), fusion of layers {config.fusion_layers} -> {config.hidden_size}-d, "
                f"PCA post-processing {'on' if config.postprocess else 'off'}")
    return save_model_folder(model, VGGishFeatureExtractor(), output)


def add_arguments(parser):
    parser.add_argument("--pca", help="PCA parameters (vggish_pca_params-970ea276.pth or vggish_pca_params.npz): "
                                      "turns on the released PCA + 8-bit post-processing of the 128-d embedding")
    parser.add_argument("--layers", type=int, nargs="+", default=[10, 15],
                        help="the paper's layer numbers 1-22 to fuse (default: 10 15)")


def run(args):
    return convert(args.checkpoint, args.output, args.pca, args.layers)
