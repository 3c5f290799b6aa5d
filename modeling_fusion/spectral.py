"""Batched torch framing and spectra for the feature extractors' `device=` path (remote code: torch, numpy).

Each extractor keeps its numpy front end as the reference and default. With `device=` it uses these
helpers: the batch is right-padded on the host and moved to the device once, framed there (each clip
reflect-padded at its own ends where the reference centres frames), transformed by one batched FFT
(on the CPU in blocks of frames), and the frames past each clip's own end are set to the padding value. Windows and filter banks are the
extractors' float64 numpy arrays (one derivation for both paths), copied to each (device, dtype) once.
"""

import numpy as np
import torch
from transformers import BatchFeature

from .audio_input import pad_frames

_DEVICE_COPIES = {}  # (bytes, shape, device, dtype) -> tensor: a few windows and filter banks per process
CPU_BLOCK_FRAMES = 1024  # frames per FFT block on the CPU


def on_device(array, device, dtype):
    """Torch copy of the numpy `array` on `device` in `dtype`, made once per (array, device, dtype)."""
    array = np.ascontiguousarray(array)
    key = (array.tobytes(), array.shape, str(torch.device(device)), dtype)
    if key not in _DEVICE_COPIES:
        _DEVICE_COPIES[key] = torch.from_numpy(array).to(device=device, dtype=dtype)
    return _DEVICE_COPIES[key]


def batch_waves(clips, device, dtype):
    """List of 1-D float32 numpy clips, or of 1-D float torch tensors on any device (`mono_clips(...,
    keep_tensors=True)`) -> (waves [B, N_max] on `device` in `dtype`, zero right-padded; lengths [B] int64 on
    `device`, samples)."""
    lengths = [len(clip) for clip in clips]
    if hasattr(clips[0], "detach"):
        if len(set(lengths)) == 1:
            return torch.stack(clips).to(device=device, dtype=dtype), torch.tensor(lengths, device=device)
        waves = torch.zeros(len(clips), max(lengths), device=device, dtype=dtype)
        for row, clip in enumerate(clips):
            waves[row, : len(clip)] = clip
        return waves, torch.tensor(lengths, device=device)
    if len(set(lengths)) == 1:
        host = np.stack(clips)
    else:
        host = np.zeros((len(clips), max(lengths)), dtype=np.float32)
        for row, clip in enumerate(clips):
            host[row, : len(clip)] = clip
    waves = torch.from_numpy(host).to(device=device, dtype=dtype)
    return waves, torch.tensor(lengths, device=device)


def reflect_pad(waves, lengths, pad):
    """[B, N] right-padded clips -> [B, N + 2 pad], each clip reflect-padded by `pad` samples at its own
    start and end exactly as `np.pad(clip, pad, mode="reflect")`; samples after that stay zero.

    Zero-padding the batch first and reflecting at the batch's end would mirror zeros into a short
    clip's last frames. Every length must exceed `pad`.
    """
    padded = torch.nn.functional.pad(waves, (pad, pad))
    padded[:, :pad] = waves[:, 1 : pad + 1].flip(-1)
    offsets = torch.arange(pad, device=waves.device)
    ends = pad + lengths[:, None]  # index of the first sample after each clip, in padded coordinates
    padded.scatter_(1, ends + offsets, padded.gather(1, ends - 2 - offsets))
    return padded


def filterbank(frames, window, filters, n_fft=None, magnitude=False):
    """frames [B, T, L] (any strides) -> [B, T, n_filters] in the dtype of `filters` [n_fft // 2 + 1, n_filters]:
    the power |rfft(frames * window, n_fft)|^2 (re^2 + im^2), or with `magnitude` |rfft|, projected on `filters`.
    n_fft: FFT length, frames zero-padded to it (default L). A GPU transforms the whole batch at once; the CPU
    goes in blocks of about CPU_BLOCK_FRAMES frames, whose buffers stay in cache (as fast as the numpy path)."""

    def transform(block):
        spectrum = torch.fft.rfft(block * window, n=n_fft)
        values = spectrum.abs() if magnitude else spectrum.real.square() + spectrum.imag.square()
        return values.to(filters.dtype) @ filters

    if frames.device.type != "cpu":
        return transform(frames)
    batch, steps = frames.shape[:2]
    out = torch.empty(batch, steps, filters.shape[1], dtype=filters.dtype)
    rows = max(1, CPU_BLOCK_FRAMES // max(steps, 1))
    for first in range(0, batch, rows):
        for start in range(0, steps, CPU_BLOCK_FRAMES):
            block = frames[first : first + rows, start : start + CPU_BLOCK_FRAMES]
            out[first : first + rows, start : start + CPU_BLOCK_FRAMES] = transform(block)
    return out


def frame_mask(num_frames, longest):
    """num_frames [B] int64 -> mask [B, longest] int32, 1 for each clip's real frames."""
    return (torch.arange(longest, device=num_frames.device)[None, :] < num_frames[:, None]).to(torch.int32)


def pad_past_end(values, mask, padding_value):
    """values [B, T, ...] -> float32 copy with the frames where mask [B, T] is 0 set to `padding_value`."""
    keep = mask.bool().reshape(*mask.shape, *([1] * (values.dim() - 2)))
    return torch.where(keep, values, torch.tensor(padding_value, dtype=values.dtype, device=values.device)).float()


def to_batch_feature(extractor, values, mask, return_attention_mask, return_tensors):
    """BatchFeature {"input_values": values, "attention_mask": mask (unless `return_attention_mask`, else the
    extractor's own setting, says no)}. Torch tensors stay on their device with return_tensors="pt"; otherwise
    they come back as numpy arrays."""
    features = {"input_values": values}
    if extractor.return_attention_mask if return_attention_mask is None else return_attention_mask:
        features["attention_mask"] = mask
    if return_tensors != "pt":
        features = {name: value.cpu().numpy() if torch.is_tensor(value) else value for name, value in features.items()}
    return BatchFeature(features, tensor_type=return_tensors)


def log_mel_features(extractor, clips, device, computation_dtype, return_attention_mask, return_tensors):
    """Mono float clips -> BatchFeature {"input_values" [B, T, mel], "attention_mask" [B, T]} for a frame-major
    extractor: each clip by `extractor.log_mel` in numpy (device None, the reference), else the whole batch by
    `extractor.torch_log_mel` on `device` in `computation_dtype`."""
    if device is None:
        values, mask = pad_frames([extractor.log_mel(clip) for clip in clips], extractor.padding_value)
    else:
        values, mask = extractor.torch_log_mel(clips, check_device(device, computation_dtype), computation_dtype)
    return to_batch_feature(extractor, values, mask, return_attention_mask, return_tensors)


def check_device(device, computation_dtype):
    """torch.device for `device`, with a ValueError for a dtype the FFT cannot take."""
    if computation_dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"computation_dtype must be torch.float32 (default) or torch.float64 (exact parity checks), "
            f"got {computation_dtype}"
        )
    return torch.device(device)


def hz_to_htk_mel(freq):
    """Hz -> HTK mel, 1127 ln(1 + f / 700), float64 (Kaldi's mel scale too): VGGish's, YAMNet's and EfficientAT's banks."""
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)
