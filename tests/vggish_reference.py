"""The reference VGGish from PyPI `torchvggish` 0.2: TF's numpy front end and the torchvggish network.

Importing the package downloads nothing (only its `vggish()` factory fetches weights), so the
modules are imported normally. Weights here are random, in the release checkpoint's layout.
"""

import numpy as np
import pytest
import torch

torchvggish = pytest.importorskip("torchvggish", reason="torchvggish is not installed (pip install -e .[test])")
from torchvggish import mel_features, vggish_input  # noqa: E402
from torchvggish.torchvggish import VGG, make_layers  # noqa: E402

EXAMPLE_SAMPLES = 15600


def random_torchvggish(seed=0):
    """torchvggish's VGG (features.N + embeddings.N, final ReLU included), PyTorch default init, eval mode."""
    torch.manual_seed(seed)
    return VGG(make_layers(), postprocess=False).eval()


def torchvggish_checkpoint(model, layout="torchvggish"):
    """The model's state dict as the torchvggish release stores it, or renamed to tcvrick's `fc.N` keys."""
    state = model.state_dict()
    if layout == "tcvrick":
        state = {key.replace("embeddings.", "fc."): value for key, value in state.items()}
    return state


def reference_examples(audio):
    """TF VGGish's numpy front end (float64) on a float clip; short clips zero-padded to one example
    first, which is our documented rule (the reference alone would return no example)."""
    audio = np.asarray(audio, dtype=np.float64)
    if len(audio) < EXAMPLE_SAMPLES:
        audio = np.pad(audio, (0, EXAMPLE_SAMPLES - len(audio)))
    return vggish_input.waveform_to_examples(audio, 16000, return_tensor=False)
