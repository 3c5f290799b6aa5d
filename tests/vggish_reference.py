"""The reference VGGish from PyPI `torchvggish` 0.2: TF's numpy front end and the torchvggish network.

Importing the package downloads nothing (only its `vggish()` factory fetches weights), so the
modules are imported normally. Weights here are random, in the release checkpoint's layout. The
fusion recipe is written out again here (loops, no package code) to check ours independently.
"""

import numpy as np
import pytest
import torch

pytest.importorskip("torchvggish", reason="torchvggish is not installed (pip install -e .[test])")
from torchvggish import mel_features, vggish_input  # noqa: E402
from torchvggish.torchvggish import VGG, make_layers  # noqa: E402

EXAMPLE_SAMPLES = 15600
TIME_STRIDES = [1, 1, 2, 2, 2, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 16]  # code index 0-15 -> input frames per step


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


def scale_close(actual, expected, rel=1e-4):
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert scale > 0 and error <= rel * scale, f"max error {error:.3e} vs scale {scale:.3e}"


def reference_layer_outputs(reference, examples):
    """torchvggish children 0-15 then the FC stack 16-21 run one by one: [output of code index i]."""
    x, outputs = examples[:, None], []
    for module in reference.features:
        x = module(x.clone())  # the reference ReLUs are in-place
        outputs.append(x.clone())
    x = x.permute(0, 2, 3, 1).reshape(len(x), -1)  # torchvggish's two transposes: NHWC flatten
    for module in reference.embeddings:
        x = module(x.clone())
        outputs.append(x.clone())
    return outputs


def independent_frames(output, code_index):
    """The recipe written out for one example batch: [N, 6, D] (max over runs of 16/stride frames, index c*F + f;
    FC vectors copied to the 6 frames)."""
    if output.ndim == 2:
        return output[:, None, :].repeat(1, 6, 1)
    kernel = 16 // TIME_STRIDES[code_index]
    n, channels, frames, freqs = output.shape
    out = torch.empty(n, 6, channels * freqs)
    for t in range(6):
        window = output[:, :, t * kernel:(t + 1) * kernel, :].amax(dim=2)  # [N, C, F]
        out[:, t] = window.reshape(n, channels * freqs)
    return out
