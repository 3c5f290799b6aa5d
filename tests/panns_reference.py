"""The reference PANNs CNN14 from PyPI `panns_inference`, loaded from its models.py file.

The package's `__init__` downloads label files at import time, so models.py is loaded on its own
under a stand-in package name (its relative import of pytorch_utils still resolves).
"""

import importlib.util
import sys
import types
from pathlib import Path

import torch

PANNS_ARGS = {16000: dict(window_size=512, hop_size=160, fmax=8000), 32000: dict(window_size=1024, hop_size=320, fmax=14000)}


def panns_models_module():
    spec = importlib.util.find_spec("panns_inference")
    if spec is None:
        import pytest

        pytest.skip("panns_inference is not installed (pip install -e .[test])")
    folder = Path(spec.origin).parent
    if "panns_reference_pkg" not in sys.modules:
        package = types.ModuleType("panns_reference_pkg")
        package.__path__ = [str(folder)]
        sys.modules["panns_reference_pkg"] = package
    name = "panns_reference_pkg.models"
    if name not in sys.modules:
        module_spec = importlib.util.spec_from_file_location(name, folder / "models.py")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    return sys.modules[name]


def random_panns_cnn14(sampling_rate, seed=0):
    """The reference Cnn14 with random weights *and* random BatchNorm statistics, in eval mode."""
    models = panns_models_module()
    torch.manual_seed(seed)
    model = models.Cnn14(sample_rate=sampling_rate, mel_bins=64, fmin=50, classes_num=527,
                         **PANNS_ARGS[sampling_rate])
    return scaled_batch_norms(model, seed)


@torch.no_grad()
def scaled_batch_norms(model, seed):
    """BatchNorm running statistics and affine parameters drawn away from 0 / 1, as a trained model's."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()
