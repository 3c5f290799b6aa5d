"""The one input path for raw audio (remote code: numpy; soxr, soundfile, torchcodec are optional).

`load_audio` turns anything a user may hand over (file path, bytes, numpy/torch array, integer PCM,
a `{"array" | "raw", "sampling_rate"}` dict, a `datasets` row, a torchcodec `AudioDecoder`) into
mono float32 at the model's rate. The pipeline, `fusion-embed` and `fusion-eval` all call it, so the
same audio gives the same embedding whatever the entry point. The feature extractors only *check*
their input (`mono_clips`: same integer-PCM rule, raise on a rate mismatch, transformers' convention).

Rules (one everywhere):
- Channels: decoders hand over every channel and we downmix by the channel **mean** (out-of-phase
  content cancels, as in every mean downmix; pytorch/audio#877). Bare 2-D arrays: the axis of size
  <= 8 (`MAX_CHANNELS`) is the channel axis, so [C, N] and [N, C] both work; [1, N] and [N, 1] are mono.
  Two axes both > 8 (a batch?) or both <= 8 is ambiguous and raises.
- Integer PCM is scaled by its format's full scale before anything else: int16 / 2**15, int32 / 2**31,
  int8 / 2**7, uint8 (x - 128) / 128. Other unsigned types raise.
- Resampling: soxr (libsoxr, "HQ": 20-bit precision, linear phase) on float32, skipped when the rates
  match. Why soxr: a maintained library whose wheels carry libsoxr, librosa's default since 0.10, and
  on a 10 s log sine sweep (`benchmarks/resampler_sweep.py`; error vs the analytic sweep at the target
  rate below 0.9 x the lower Nyquist; leak = output energy where the sweep is above the target Nyquist)
  it is both the most accurate and the fastest of those the package used before:

      44.1 -> 16 kHz   passband error / leak     8 -> 16 kHz passband error   time (44.1 -> 16, 10 s)
      soxr HQ          -80 dB / -80 dB           -134 dB                      1.8 ms
      soxr VHQ         -82 dB / -80 dB           -152 dB                      2.5 ms
      resample_poly    -48 dB / -21 dB           -45 dB                       11 ms
      FFmpeg (CLI)     -45 dB / -28 dB           -51 dB                       ~220 ms (process start)

  VHQ gains nothing that matters at 16/32 kHz model rates, so HQ it is.
"""

import contextlib
import contextvars
import io
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MAX_CHANNELS = 8  # the axis of a 2-D array whose size is <= this is the channel axis
RESAMPLER_QUALITY = "HQ"


PCM_SCALE_LIMIT = 256.0  # float audio far beyond [-1, 1] (e.g. 32767) is integer PCM stored as floats
_VALUES_CHECKED = contextvars.ContextVar("values_checked", default=False)


@contextlib.contextmanager
def values_checked():
    """Within this block, tensor clips (`mono_clips(..., keep_tensors=True)`) skip the two value checks that
    need a host sync per batch (float range, finiteness); shapes and lengths are still checked. For callers
    whose every clip came from `load_audio` (which raises on NaN/Inf) and was range-checked where it was
    decoded, e.g. fusion-eval's DataLoader workers: a device batch then goes to the model without waiting."""
    token = _VALUES_CHECKED.set(True)
    try:
        yield
    finally:
        _VALUES_CHECKED.reset(token)


def resampler_tag():
    """("soxr", version, quality): the resampler's identity for caches and output metadata."""
    return ("soxr", _soxr().__version__, RESAMPLER_QUALITY)


def load_audio(audio, sampling_rate, source_rate=None, name=None, min_samples=None):
    """Any supported audio -> mono float32 [N] at `sampling_rate` Hz.

    audio: a file path (str/Path) or the file's bytes (decoded with soundfile, torchcodec for formats
    libsndfile lacks); a numpy array or torch tensor [N], [C, N] or [N, C] (C <= 8) of float samples in
    [-1, 1] or integer PCM; a dict {"array" or "raw": samples, "sampling_rate": Hz} (a `datasets` row's
    audio; not modified) or {"path", "bytes"} (a row cast with `Audio(decode=False)`); a torchcodec
    `AudioDecoder` (a `datasets` row: its file is decoded here, at the file's own rate, even when the
    column was cast with `Audio(sampling_rate=...)`).
    sampling_rate: the target rate in Hz (the model's).
    source_rate: the rate of a bare array in Hz; None means it is already at `sampling_rate`.
    name: how errors refer to the input (default: the file path, or "audio").
    min_samples: the shortest clip the model takes, in samples at `sampling_rate`; a shorter input raises a
    ValueError counting its own samples at its own rate and the count after resampling.
    Raises ValueError naming the input for unreadable files, empty or non-finite audio, ambiguous
    2-D layouts, more than 2 dims, and unsupported dtypes. Needs soxr to resample.
    """
    encoded = getattr(audio, "_hf_encoded", None)  # a `datasets` row's AudioDecoder keeps its file
    if isinstance(encoded, dict) and (encoded.get("bytes") is not None or encoded.get("path") is not None):
        audio = encoded  # decode the file ourselves: its own rate and soxr, not FFmpeg's resampler
    if isinstance(audio, dict):
        name = name or (str(audio["path"]) if audio.get("path") else None)
        audio, source_rate = _from_dict(audio, name or "audio")
    name = name or (str(audio) if isinstance(audio, (str, Path)) else "audio")
    if isinstance(audio, (str, Path, bytes, bytearray)):
        samples, source_rate = decode(audio, name)  # [frames, channels]
        wave = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    elif hasattr(audio, "get_all_samples"):  # torchcodec AudioDecoder: data is [channels, samples]
        decoded = audio.get_all_samples()
        wave, source_rate = decoded.data.float().mean(dim=0).numpy(), decoded.sample_rate
    else:
        wave = to_mono(audio, name)
    if wave.size == 0:
        raise ValueError(f"{name}: the audio is empty (0 samples).")
    if not np.isfinite(wave).all():
        raise ValueError(f"{name}: the audio contains NaN or Inf samples; clean or drop it.")
    resampled = resample(wave, source_rate or sampling_rate, sampling_rate)
    if min_samples and len(resampled) < min_samples:
        raise ValueError(too_short(name, len(wave), source_rate or sampling_rate, len(resampled), sampling_rate,
                                   min_samples))
    return resampled


def too_short(where, samples, source_rate, resampled, rate, min_samples):
    """The too-short message: the input's own `samples` at `source_rate` Hz, and `resampled` at the model's `rate`."""
    at_model_rate = "" if int(source_rate) == int(rate) else f", {resampled} samples at the model's {rate} Hz"
    needed = -(-min_samples * int(source_rate) // int(rate))  # at the input's own rate, rounded up
    return (f"{where} has {samples} samples at {int(source_rate)} Hz ({samples / source_rate:.3f} s{at_model_rate}); "
            f"this model needs at least {min_samples} samples ({min_samples / rate:.3f} s) at {rate} Hz. Zero-pad it at "
            f"the end, e.g. np.pad(x, (0, {needed} - len(x))) at {int(source_rate)} Hz.")


def decode(source, name=None):
    """File path or bytes -> (float32 samples [frames, channels], rate in Hz), every channel kept.

    soundfile (libsndfile: WAV, FLAC, Ogg/Vorbis/Opus, MP3, AIFF, ...) first; torchcodec (FFmpeg) for
    the formats libsndfile lacks (e.g. M4A/AAC). Raises ValueError naming the file when neither reads it.
    """
    name = name or str(source)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise ValueError(f"cannot decode audio file {name}: no such file.")
    source = str(source) if isinstance(source, Path) else bytes(source) if isinstance(source, bytearray) else source
    try:
        import soundfile
    except ImportError:
        soundfile = None
    errors = []
    if soundfile is not None:
        try:
            handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
            samples, rate = soundfile.read(handle, dtype="float32", always_2d=True)
            return samples, int(rate)
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
            errors.append(f"soundfile: {str(error).splitlines()[0]}")
    try:
        from torchcodec.decoders import AudioDecoder
    except (ImportError, RuntimeError, OSError):
        AudioDecoder = None
    if AudioDecoder is not None:
        try:
            decoded = AudioDecoder(source).get_all_samples()
            return decoded.data.float().numpy().T.copy(), int(decoded.sample_rate)
        except Exception as error:  # torchcodec raises RuntimeError/ValueError from FFmpeg
            errors.append(f"torchcodec: {str(error).splitlines()[0]}")
    if not errors:
        raise ValueError(f"cannot decode audio file {name}: install soundfile (pip install soundfile).")
    raise ValueError(f"cannot decode audio file {name} ({'; '.join(errors)}).")


def to_mono(audio, name):
    """numpy/torch samples [N], [C, N] or [N, C] (C <= 8), float or integer PCM -> float32 [N] (channel mean)."""
    wave = pcm_to_float(_numpy(audio), name)
    if wave.ndim == 1:
        return wave
    if wave.ndim != 2:
        raise ValueError(f"{name}: expected audio [N], [channels, N] or [N, channels], got shape {wave.shape}.")
    rows, cols = wave.shape
    if rows == 1 or cols == 1:
        return wave.reshape(-1)
    if (rows <= MAX_CHANNELS) == (cols <= MAX_CHANNELS):
        raise ValueError(
            f"{name}: cannot tell channels from samples in an array of shape {wave.shape}: one axis must have "
            f"at most {MAX_CHANNELS} channels and the other more samples. Give one clip at a time as [N], "
            "[channels, N] or [N, channels]."
        )
    return wave.mean(axis=0 if rows <= MAX_CHANNELS else 1, dtype=np.float32)


def pcm_to_float(samples, name):
    """Samples -> float32; integer PCM scaled by its full scale (int16 / 2**15, uint8 (x - 128) / 128)."""
    kind = samples.dtype.kind
    if kind == "f":
        check_float_range(float(np.max(np.abs(samples), initial=0.0)), name)
        return samples.astype(np.float32, copy=False)
    if kind == "i" and samples.dtype.itemsize > 4:
        raise ValueError(
            f"{name}: samples have dtype {samples.dtype}, which is no PCM format (its full scale, 2**63, would make "
            "the audio silent); cast to the PCM type the data really is (e.g. x.astype(np.int16)) or to float in [-1, 1]."
        )
    if kind == "i":
        return (samples / np.float32(2 ** (8 * samples.dtype.itemsize - 1))).astype(np.float32)
    if samples.dtype == np.uint8:
        return ((samples.astype(np.float32) - 128) / 128).astype(np.float32)
    raise ValueError(
        f"{name}: samples have dtype {samples.dtype}; give float audio in [-1, 1] or signed integer PCM "
        "(int16/int32) or uint8."
    )


def check_float_range(peak, name):
    """ValueError when float samples peak (finite; NaN/Inf are reported by the finiteness checks) far past
    [-1, 1], as integer PCM stored as floats does."""
    if PCM_SCALE_LIMIT < peak < np.inf:
        raise ValueError(
            f"{name}: float samples reach {peak:.0f}, which looks like integer PCM "
            "stored as floats; give float audio in [-1, 1] (e.g. x / 32768 for 16-bit PCM) or the int16/int32 array."
        )


def resample(wave, source_rate, sampling_rate):
    """Mono float32 [N] at `source_rate` Hz -> at `sampling_rate` Hz with soxr HQ (unchanged if equal)."""
    if int(source_rate) == int(sampling_rate):
        return wave
    return _soxr().resample(wave, int(source_rate), int(sampling_rate), quality=RESAMPLER_QUALITY).astype(
        np.float32, copy=False)


def _numpy(samples):
    """numpy array, torch tensor (any device; bfloat16 has no numpy type) or sequence -> numpy array."""
    if hasattr(samples, "detach"):
        samples = samples.detach().cpu()
        return (samples.float() if samples.is_floating_point() else samples).numpy()
    return np.asarray(samples)


def _soxr():
    try:
        import soxr
    except ImportError:
        raise ImportError("resampling audio needs soxr: pip install soxr") from None
    return soxr


def _from_dict(audio, name):
    if audio.get("array") is not None or audio.get("raw") is not None:
        if "sampling_rate" not in audio:
            raise ValueError(f'{name}: a dict input needs "sampling_rate" (Hz) next to its "array"/"raw" samples.')
        samples = audio["array"] if audio.get("array") is not None else audio["raw"]
        return samples, int(audio["sampling_rate"])
    if audio.get("bytes") is not None:
        return audio["bytes"], None
    if audio.get("path") is not None:
        return audio["path"], None
    raise ValueError(
        f'{name}: a dict input needs "array" (or "raw") and "sampling_rate", like a datasets row, or "path"/"bytes".'
    )


def mono_clips(raw_audio, sampling_rate, expected_rate, min_samples, name, fixed_seconds=None, keep_tensors=False):
    """Validate `raw_audio` (one clip or a batch) -> list of 1-D float32 arrays.

    A 2-D array is a batch of equal-length mono clips [B, N]; [N, C] with C <= 8 is rejected as
    multichannel. Integer PCM is scaled as in `load_audio`. `min_samples` is the shortest clip the
    model accepts. A rate other than `expected_rate` raises (transformers' convention): callers that
    want resampling, channel downmix or file decoding pass their input through `load_audio` first.
    fixed_seconds: when set (the `fixed_clip_seconds` that `fusion-eval --export-classifier` writes
    into an exported probe's preprocessor_config.json), every clip is fixed to that length by
    `fix_length`: its first `fixed_seconds` s, zero-padded at the end, as the probe saw its test clips.
    keep_tensors: floating-point torch input (a [N] or [B, N] tensor, or a list of [N_i] tensors) on any
    device is validated there and returned as a list of 1-D tensor views, not copied to numpy (the extractors'
    `device=` paths: a batch already on the GPU stays there).
    """
    if sampling_rate is None:
        logger.warning(
            f"{name}: no `sampling_rate` given; assuming {expected_rate} Hz. Pass sampling_rate= to catch mismatches."
        )
    elif int(sampling_rate) != int(expected_rate):
        raise ValueError(
            f"{name}: audio is at {sampling_rate} Hz but this model expects {expected_rate} Hz. Resample it first, "
            f"e.g. datasets' Audio(sampling_rate={expected_rate}) or librosa.resample(y, orig_sr={sampling_rate}, "
            f"target_sr={expected_rate}), or load_audio(audio, {expected_rate}, source_rate={sampling_rate}) from "
            "this model's audio_input module."
        )
    if isinstance(raw_audio, (list, tuple)) and not len(raw_audio):
        raise ValueError(f"{name}: got an empty batch; give at least one clip.")
    tensors = keep_tensors and _is_float_tensors(raw_audio)
    if tensors:  # detached float32, as the numpy path rounds to float32; views of float32 input
        raw_audio = ([clip.detach().float() for clip in raw_audio] if isinstance(raw_audio, (list, tuple))
                     else raw_audio.detach().float())
    elif hasattr(raw_audio, "detach"):
        raw_audio = _numpy(raw_audio)
    if isinstance(raw_audio, np.ndarray) or (tensors and hasattr(raw_audio, "detach")):
        shape = tuple(raw_audio.shape)
        if len(shape) == 2 and shape[1] <= MAX_CHANNELS < shape[0]:
            raise ValueError(
                f"{name}: got an array of shape {shape}, which looks like {shape[1]}-channel audio [samples, "
                "channels]. Give mono audio: downmix with x.mean(1) or load_audio(x, rate)."
            )
        if len(shape) > 2:
            raise ValueError(f"{name}: expected a 1-D clip or a 2-D batch [B, N], got shape {shape}.")
        clips = list(raw_audio) if len(shape) == 2 else [raw_audio]
    elif isinstance(raw_audio, (list, tuple)) and len(raw_audio) and not np.isscalar(raw_audio[0]):
        clips = list(raw_audio)
    else:
        clips = [raw_audio]
    if not clips:
        raise ValueError(f"{name}: got an empty batch; give at least one clip.")
    if tensors:
        batch = raw_audio if hasattr(raw_audio, "detach") and raw_audio.ndim == 2 else None
        return _checked_tensor_clips(clips, batch, expected_rate, min_samples, name, fixed_seconds)
    if fixed_seconds:
        unit = int(round(fixed_seconds * expected_rate))
        clips = [fix_length(pcm_to_float(clip, name), unit) if clip.ndim == 1 else clip
                 for clip in map(_numpy, clips)]
    return [check_clip(clip, expected_rate, min_samples, f"{name}: clip {index}") for index, clip in enumerate(clips)]


def check_fixed_clip_seconds(seconds, name):
    """An extractor's `fixed_clip_seconds` argument -> None (clips keep their own length) or float seconds > 0;
    ValueError naming `name` for anything else (a string, zero, negative, NaN or infinite)."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
        raise ValueError(f"{name}: fixed_clip_seconds must be None or a number of seconds > 0, got {seconds!r}")
    return float(seconds)


def _is_float_tensors(raw_audio):
    """A floating-point torch tensor, or a non-empty list/tuple of them."""
    items = raw_audio if isinstance(raw_audio, (list, tuple)) and len(raw_audio) else [raw_audio]
    return all(hasattr(item, "detach") and item.is_floating_point() for item in items)


def _checked_tensor_clips(clips, batch, rate, min_samples, name, fixed_seconds):
    """The checks of the numpy path (`pcm_to_float`, `check_clip`) on float32 tensor clips, computed where they
    are: two host syncs for a [B, N] `batch` (the clips are its rows), two per clip otherwise; none of them inside
    `values_checked()`, where only shapes and lengths are checked."""
    def where(index):
        return f"{name}: clip {index}"

    checked = _VALUES_CHECKED.get()  # `values_checked()`: range and finiteness known, no host syncs
    # on whole clips, before fixing the length, as `pcm_to_float` (a NaN or Inf peak is left to the finiteness check)
    if checked:
        peaks = []
    elif batch is not None:
        peaks = batch.abs().amax(dim=1).tolist()
    else:
        peaks = [clip.abs().amax().item() if clip.numel() else 0.0 for clip in clips]
    for index, peak in enumerate(peaks):
        check_float_range(peak, where(index))
    if fixed_seconds:
        unit = int(round(fixed_seconds * rate))
        fixed = [clip.new_zeros(unit) if clip.ndim == 1 else clip for clip in clips]
        for clip, out in zip(clips, fixed):
            if clip.ndim == 1:
                out[: min(unit, len(clip))] = clip[:unit]
        clips, batch = fixed, None
    for index, clip in enumerate(clips):
        check_samples(clip, rate, min_samples, where(index))
    if checked:
        return clips
    finite = batch.isfinite().all(dim=1).tolist() if batch is not None else [c.isfinite().all().item() for c in clips]
    for index, ok in enumerate(finite):
        if not ok:
            raise ValueError(f"{where(index)} contains NaN or Inf samples; clean or drop it.")
    return clips


def check_clip(clip, rate, min_samples, where):
    """One mono clip [N] (float or integer PCM, numpy or torch) -> float32 [N], or a ValueError
    starting with `where` (e.g. the file) for wrong shapes, empty, too short (< `min_samples` at
    `rate` Hz) or non-finite audio."""
    clip = pcm_to_float(_numpy(clip), where)
    check_samples(clip, rate, min_samples, where)
    if not np.isfinite(clip).all():
        raise ValueError(f"{where} contains NaN or Inf samples; clean or drop it.")
    return clip


def check_samples(clip, rate, min_samples, where):
    """ValueError starting with `where` unless `clip` (numpy or torch) is 1-D with at least `min_samples`."""
    if clip.ndim != 1:
        raise ValueError(
            f"{where} has shape {tuple(clip.shape)}; give mono 1-D audio (downmix stereo by averaging the channels)."
        )
    if len(clip) == 0:
        raise ValueError(f"{where} is empty (0 samples).")
    if len(clip) < min_samples:
        raise ValueError(too_short(where, len(clip), rate, len(clip), rate, min_samples))


def fix_length(wave, unit_samples, offset=0):
    """[N] -> [unit_samples] float32: the window at `offset`, zero-padded at the end when short (a view of a
    float32 `wave` when no padding is needed: copying 10 s at 32 kHz was a quarter of a DataLoader worker's time)."""
    wave = np.asarray(wave, dtype=np.float32)[offset:offset + unit_samples]
    return wave if len(wave) == unit_samples else np.pad(wave, (0, unit_samples - len(wave)))


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
