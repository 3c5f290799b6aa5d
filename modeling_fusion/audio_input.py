"""Checks and batching for raw audio given to the feature extractors (remote code: numpy only).

Every extractor turns its input into a list of mono float32 clips here, so bad input fails the same
way for every backbone: a `ValueError` that says what is wrong and what to do.
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

MAX_CHANNELS = 8  # a 2-D array whose last axis is this small is multichannel audio, not a batch


def mono_clips(raw_audio, sampling_rate, expected_rate, min_samples, name):
    """Validate `raw_audio` (one clip or a batch) -> list of 1-D float32 arrays.

    A 2-D array is a batch of equal-length mono clips [B, N]; [N, C] with C <= 8 is rejected as
    multichannel. `min_samples` is the shortest clip the model accepts.
    """
    if sampling_rate is None:
        logger.warning(
            f"{name}: no `sampling_rate` given; assuming {expected_rate} Hz. Pass sampling_rate= to catch mismatches."
        )
    elif int(sampling_rate) != int(expected_rate):
        raise ValueError(
            f"{name}: audio is at {sampling_rate} Hz but this model expects {expected_rate} Hz. Resample it first, "
            f"e.g. datasets' Audio(sampling_rate={expected_rate}) or librosa.resample(y, orig_sr={sampling_rate}, "
            f"target_sr={expected_rate})."
        )
    if hasattr(raw_audio, "detach"):  # torch tensor
        raw_audio = raw_audio.detach().cpu().numpy()
    if isinstance(raw_audio, np.ndarray):
        if raw_audio.ndim == 2 and raw_audio.shape[1] <= MAX_CHANNELS < raw_audio.shape[0]:
            raise ValueError(
                f"{name}: got an array of shape {raw_audio.shape}, which looks like {raw_audio.shape[1]}-channel "
                "audio [samples, channels]. Give mono audio: downmix with x.mean(axis=1)."
            )
        if raw_audio.ndim > 2:
            raise ValueError(f"{name}: expected a 1-D clip or a 2-D batch [B, N], got shape {raw_audio.shape}.")
        clips = list(raw_audio) if raw_audio.ndim == 2 else [raw_audio]
    elif isinstance(raw_audio, (list, tuple)) and len(raw_audio) and not np.isscalar(raw_audio[0]):
        clips = list(raw_audio)
    else:
        clips = [raw_audio]
    if not clips:
        raise ValueError(f"{name}: got an empty batch; give at least one clip.")
    return [_check_clip(clip, index, expected_rate, min_samples, name) for index, clip in enumerate(clips)]


def _check_clip(clip, index, rate, min_samples, name):
    if hasattr(clip, "detach"):
        clip = clip.detach().cpu().numpy()
    clip = np.asarray(clip)
    where = f"{name}: clip {index}"
    if clip.dtype.kind in "iu":
        raise ValueError(
            f"{where} is integer PCM ({clip.dtype}); give float audio in [-1, 1], e.g. x.astype(np.float32) / 32768 "
            "for int16."
        )
    if clip.dtype.kind not in "f":
        raise ValueError(f"{where} has dtype {clip.dtype}; give a float array of samples in [-1, 1].")
    if clip.ndim != 1:
        raise ValueError(
            f"{where} has shape {clip.shape}; give mono 1-D audio (downmix stereo by averaging the channels)."
        )
    if clip.size == 0:
        raise ValueError(f"{where} is empty (0 samples).")
    if clip.size < min_samples:
        raise ValueError(
            f"{where} has {clip.size} samples ({clip.size / rate:.3f} s); this model needs at least {min_samples} "
            f"samples ({min_samples / rate:.3f} s) at {rate} Hz. Zero-pad it at the end, e.g. "
            f"np.pad(x, (0, {min_samples} - len(x)))."
        )
    if not np.isfinite(clip).all():
        raise ValueError(f"{where} contains NaN or Inf samples; clean or drop it.")
    return clip.astype(np.float32, copy=False)


def pad_frames(features, padding_value=0.0, time_axis=0):
    """Stack per-clip features of different lengths along `time_axis` (right padding).

    features: list of arrays whose shapes differ only on `time_axis`. Returns (batch [B, ...],
    attention_mask [B, T] int32 with 1 for real frames).
    """
    longest = max(f.shape[time_axis] for f in features)
    batch, mask = [], np.zeros((len(features), longest), dtype=np.int32)
    for row, feature in enumerate(features):
        length = feature.shape[time_axis]
        pad = [(0, 0)] * feature.ndim
        pad[time_axis] = (0, longest - length)
        batch.append(np.pad(feature, pad, constant_values=padding_value))
        mask[row, :length] = 1
    return np.stack(batch).astype(np.float32), mask
