"""Independent reference computations for the AST tests (written without the package's code).

A tiny random `transformers.ASTModel` is the reference transformer; the final LayerNorm, the (CLS+DIST)/2
pooling, the per-frame regrouping and the position-embedding adaptation of the original AST code are
recomputed here from their definitions (numpy, float64 where it matters).
"""

import numpy as np
import torch
from transformers import ASTConfig, ASTForAudioClassification

TINY = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=2, intermediate_size=96)


def random_ast_head(seed=0, num_labels=5, **overrides):
    """A tiny ASTForAudioClassification (12 x 101 patch grid) with every parameter random, in eval mode."""
    torch.manual_seed(seed)
    model = ASTForAudioClassification(ASTConfig(**{**TINY, **overrides}, num_labels=num_labels))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layernorm" in name and name.endswith("weight"):
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(0.0, 0.2)
    return model.eval()


def layer_norm(x, weight, bias, eps):
    """LayerNorm over the last axis in float64."""
    x = np.asarray(x, np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(weight, np.float64) + np.asarray(bias, np.float64)


def cls_dist(normed):
    """[B, tokens, D] -> [B, D]: mean of token 0 ([CLS]) and token 1 (distillation)."""
    return (normed[:, 0] + normed[:, 1]) / 2


def regroup_frames(normed, frequency_patches):
    """[B, 2 + F * T, D] tokens (frequency-major: token 2 + f * T + t) -> [B, T, D * F] per-frame vectors,
    element c * F + f of frame t = channel c of patch (f, t)."""
    batch, tokens, width = normed.shape
    time = (tokens - 2) // frequency_patches
    out = np.zeros((batch, time, width * frequency_patches))
    for t in range(time):
        for f in range(frequency_patches):
            out[:, t, np.arange(width) * frequency_patches + f] = normed[:, 2 + f * time + t]
    return out


def linear_resize_index(size_in, size_out):
    """PyTorch's align_corners=False sampling for one axis: (low index, high index, weight of high)."""
    scale = size_in / size_out
    source = np.maximum((np.arange(size_out) + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(int), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, source - low


def adapted_positions(position_embeddings, grid, time_patches):
    """The original AST's adaptation of a [1, 2 + F * T0, D] table to T time patches, in numpy float64:
    centre columns T0 // 2 - T // 2 onwards when T < T0, bilinear (align_corners=False) when T > T0."""
    table = np.asarray(position_embeddings, np.float64)[0]
    frequency, time = grid
    patches = table[2:].reshape(frequency, time, -1)  # [F, T0, D]
    if time_patches <= time:
        start = time // 2 - time_patches // 2
        new = patches[:, start : start + time_patches]
    else:
        low, high, weight = linear_resize_index(time, time_patches)
        new = patches[:, low] * (1 - weight)[None, :, None] + patches[:, high] * weight[None, :, None]
    return np.concatenate([table[:2], new.reshape(frequency * time_patches, -1)])[None]


def input_frames(num_samples):
    """Kaldi fbank frames of a clip: 25 ms windows every 10 ms, no padding."""
    return 1 + (num_samples - 400) // 160


def time_patches(frames):
    return (frames - 16) // 10 + 1


def kaldi_fbank(clip, sampling_rate=16000, num_mel_bins=128, low_freq=20.0):
    """torchaudio.compliance.kaldi.fbank with AST's settings, re-derived in numpy float64 from the recipe:
    400-sample frames every 160 (snip edges), DC removal, pre-emphasis 0.97 (first sample against itself),
    symmetric Hann, 512-point power spectrum, Kaldi mel triangles (linear in 1127 ln(1 + f / 700)) from
    20 Hz to Nyquist on the 256 bins below Nyquist, natural log floored at float32 eps."""
    clip = np.asarray(clip, np.float64)
    starts = 160 * np.arange(input_frames(len(clip)))
    frames = clip[starts[:, None] + np.arange(400)[None, :]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames - 0.97 * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399)
    power = np.abs(np.fft.rfft(frames * window, n=512, axis=1)) ** 2

    def mel(freq):
        return 1127.0 * np.log(1.0 + freq / 700.0)

    low, high = mel(low_freq), mel(sampling_rate / 2)
    step = (high - low) / (num_mel_bins + 1)
    bin_mels = mel(np.arange(256) * sampling_rate / 512)
    banks = np.zeros((num_mel_bins, 257))
    for m in range(num_mel_bins):
        left, centre, right = low + m * step, low + (m + 1) * step, low + (m + 2) * step
        rising, falling = (bin_mels - left) / (centre - left), (right - bin_mels) / (right - centre)
        banks[m, :256] = np.maximum(0.0, np.minimum(rising, falling))
    return np.log(np.maximum(power @ banks.T, np.finfo(np.float32).eps))
