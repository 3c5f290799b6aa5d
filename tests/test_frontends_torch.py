"""The feature extractors' torch path (`device=`) against their numpy reference path, per backbone.

Tolerances, in each front end's output unit (float32 FFT round-off is relative to a frame's energy, so
near-empty mel bins of a tonal or band-limited frame are the least precise; float64 is exact parity):
- CNN14 (dB): float32 <= 1e-3 dB in bins within 60 dB of their frame's loudest bin (all bins of noise and
  silence), <= 0.2 dB in any bin; float64 <= 1e-6 dB.
- EfficientAT (normalised log, (ln + 4.5) / 5; the 1e-5 log offset bounds every bin): float32 <= 2e-4; float64 <= 1e-6.
- AST (log fbank, before normalisation): float32 <= 1e-3 within 60 dB (ln 1e6 = 13.8) of the frame's loudest
  bin, <= 1e-2 in any bin; float64 <= 1e-5 (the reference stores the spectrum as complex64).
- VGGish (log(mel magnitude + 0.01)): float32 <= 1e-3; float64 <= 1e-6.
Signals: silence, full-scale uniform noise, a pure tone, band-limited noise, mixed lengths around hop boundaries.
The torch path runs on the CPU; $FUSION_TEST_DEVICE (e.g. cuda) runs it on another device (benchmarks/gpu_check.sh).
"""

import os

import numpy as np
import pytest
import torch
from transformers.audio_utils import spectrogram

from modeling_fusion.feature_extraction_ast import AstFusionFeatureExtractor
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.feature_extraction_efficientat import EfficientATFeatureExtractor
from modeling_fusion.feature_extraction_vggish import VGGishFeatureExtractor
from modeling_fusion import spectral
from modeling_fusion.spectral import reflect_pad

EXTRACTORS = {"cnn14": Cnn14FeatureExtractor, "efficientat": EfficientATFeatureExtractor,
              "ast": AstFusionFeatureExtractor, "vggish": VGGishFeatureExtractor}
# (float32 bound within 60 dB of the frame's loudest bin, float32 bound anywhere, float64 bound)
TOLERANCES = {"cnn14": (1e-3, 0.2, 1e-6), "efficientat": (2e-4, 2e-4, 1e-6), "ast": (1e-3, 1e-2, 1e-5),
              "vggish": (1e-3, 1e-3, 1e-6)}
DEVICE = torch.device(os.environ.get("FUSION_TEST_DEVICE", "cpu"))
WITHIN_60_DB = {"cnn14": 60.0, "efficientat": np.log(1e6) / 5, "ast": np.log(1e6), "vggish": np.log(1e3)}


def signals(rate, seconds=1.5):
    """name -> clip: silence, full-scale noise, a tone and band-limited noise (below rate / 8)."""
    rng = np.random.default_rng(0)
    n = int(rate * seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[n // 8:] = 0
    band = np.fft.irfft(spectrum, n)
    return {
        "silence": np.zeros(n, np.float32),
        "noise": rng.uniform(-1, 1, n).astype(np.float32),
        "tone": (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32),
        "band": (0.5 * band / np.abs(band).max()).astype(np.float32),
    }


def mixed_lengths(extractor):
    """Lengths from the shortest accepted clip to 2 s, on and around hop boundaries."""
    hop = getattr(extractor, "hop_length", 160)
    shortest = max(getattr(extractor, "min_samples", 1), 1)
    rate = extractor.sampling_rate
    lengths = [shortest, shortest + 1, rate - 1, rate, 7 * hop, 7 * hop + 1, 2 * rate + hop // 2]
    rng = np.random.default_rng(1)
    return [rng.uniform(-1, 1, max(length, shortest)).astype(np.float32) for length in lengths]


def reference_values(name, extractor, clips):
    """The numpy reference in the unit the tolerances are stated in: per clip, without batch padding."""
    if name == "ast":
        return [numpy_fbank(extractor, clip) for clip in clips]
    if name == "vggish":
        values, mask = extractor.examples(clips)
        return [v[m.astype(bool)] for v, m in zip(values, mask)]
    return [extractor.log_mel(clip) for clip in clips]


def torch_values(name, extractor, clips, dtype):
    """The torch path, per clip, in the same unit, with each clip's frames cut by its own mask."""
    device = DEVICE
    if name == "ast":
        values, mask = extractor.torch_log_fbank(clips, device, dtype)
    elif name == "vggish":
        values, mask = extractor.torch_examples(clips, device, dtype)
    else:
        values, mask = extractor.torch_log_mel(clips, device, dtype)
    return [v[m.bool()].cpu().numpy() for v, m in zip(values, mask)]


def numpy_fbank(extractor, clip):
    """transformers' numpy Kaldi fbank, exactly as ASTFeatureExtractor calls it without torchaudio."""
    return spectrogram(clip, extractor.window, frame_length=400, hop_length=160, fft_length=512, power=2.0,
                       center=False, preemphasis=0.97, mel_filters=extractor.mel_filters, log_mel="log",
                       mel_floor=1.192092955078125e-07, remove_dc_offset=True).T


def check_close(name, reference, ours, dtype, what):
    near, anywhere, exact = TOLERANCES[name]
    assert ours.shape == reference.shape, what
    error = np.abs(ours.astype(np.float64) - reference)
    if dtype == torch.float64:
        assert error.max() <= exact, f"{name} {what} float64: {error.max():.3g}"
        return
    loud = reference >= reference.max(axis=-1, keepdims=True) - WITHIN_60_DB[name]
    assert error[loud].max() <= near, f"{name} {what} within 60 dB: {error[loud].max():.3g}"
    assert error.max() <= anywhere, f"{name} {what} anywhere: {error.max():.3g}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_torch_path_matches_numpy(name, dtype):
    extractor = EXTRACTORS[name]()
    named = signals(extractor.sampling_rate)
    clips = list(named.values()) + mixed_lengths(extractor)
    labels = list(named) + [f"length {len(clip)}" for clip in clips[len(named):]]
    batched = torch_values(name, extractor, clips, dtype)  # one batch: every length padded to the longest
    for label, reference, ours in zip(labels, reference_values(name, extractor, clips), batched):
        check_close(name, np.asarray(reference, np.float64), ours, dtype, label)


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_call_batch_padding_mask_and_single_clip(name):
    """__call__(device="cpu"): same keys, shapes, mask and padding as the numpy path; a batch row equals the
    clip alone through the torch path; silence equals the numpy path's value of silence."""
    extractor = EXTRACTORS[name]()
    rate = extractor.sampling_rate
    clips = mixed_lengths(extractor)[::-1] + [np.zeros(rate, np.float32)]
    reference = extractor(clips, sampling_rate=rate)
    ours = extractor(clips, sampling_rate=rate, device=DEVICE)
    assert set(ours) == set(reference) == {"input_values", "attention_mask"}
    assert isinstance(ours["input_values"], np.ndarray) and ours["input_values"].dtype == np.float32
    np.testing.assert_array_equal(ours["attention_mask"], reference["attention_mask"])
    assert ours["attention_mask"].dtype == reference["attention_mask"].dtype == np.int32
    padding = ~reference["attention_mask"].astype(bool)
    assert padding.any(), "mixed lengths must leave padding"
    np.testing.assert_array_equal(ours["input_values"][padding], reference["input_values"][padding])
    np.testing.assert_allclose(ours["input_values"][-1], reference["input_values"][-1], atol=1e-6)  # silence
    # AST: normalised units (log / 9.1), 2e-3 also covers torchaudio's fbank, its numpy path where installed
    np.testing.assert_allclose(ours["input_values"], reference["input_values"],
                               atol=2e-3 if name == "ast" else TOLERANCES[name][1])
    for row in (0, 3):
        alone = extractor(clips[row], sampling_rate=rate, device=DEVICE)
        frames = alone["attention_mask"].shape[1]
        np.testing.assert_array_equal(alone["attention_mask"][0], ours["attention_mask"][row, :frames])
        np.testing.assert_allclose(alone["input_values"][0], ours["input_values"][row, :frames], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_pt_tensors_stay_on_the_device(name):
    extractor = EXTRACTORS[name]()
    clip = signals(extractor.sampling_rate)["noise"]
    features = extractor([clip, clip[: len(clip) // 2]], sampling_rate=extractor.sampling_rate, device=DEVICE.type,
                         return_tensors="pt")
    assert all(torch.is_tensor(value) and value.device.type == DEVICE.type for value in features.values())
    assert features["input_values"].dtype == torch.float32 and features["attention_mask"].dtype == torch.int32
    with pytest.raises(ValueError, match="computation_dtype"):
        extractor(clip, sampling_rate=extractor.sampling_rate, device=DEVICE, computation_dtype=torch.float16)


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_tensor_batches_on_the_device_equal_numpy_clips(name):
    """fusion-eval hands the extractor its batch as one [B, N] tensor already on the device (or a list of
    views of it for uneven lengths): the features equal those of the same clips given as numpy arrays, and
    bad clips raise the numpy path's errors, naming the clip."""
    extractor = EXTRACTORS[name]()
    rate = extractor.sampling_rate
    named = signals(rate)
    batch = torch.from_numpy(np.stack(list(named.values()))).to(DEVICE)
    expected = extractor(list(named.values()), sampling_rate=rate, device=DEVICE, return_tensors="pt")
    uneven = [batch[0], batch[1, : rate // 2], batch[3, : rate]]
    expected_uneven = extractor([clip.cpu().numpy() for clip in uneven], sampling_rate=rate, device=DEVICE,
                                return_tensors="pt")
    for given, reference in ((batch, expected), (list(batch), expected), (uneven, expected_uneven)):
        ours = extractor(given, sampling_rate=rate, device=DEVICE, return_tensors="pt")
        assert set(ours) == set(reference)
        for key in reference:
            assert ours[key].device.type == DEVICE.type
            torch.testing.assert_close(ours[key], reference[key], rtol=0, atol=0)
    bad = batch.clone()
    bad[2, 5] = float("nan")
    with pytest.raises(ValueError, match="clip 2 contains NaN"):
        extractor(bad, sampling_rate=rate, device=DEVICE)
    with pytest.raises(ValueError, match="clip 1: float samples reach 3"):
        extractor([batch[0], batch[1] * 32767.0], sampling_rate=rate, device=DEVICE)
    with pytest.raises(ValueError, match="looks like 4-channel audio"):
        extractor(batch.T, sampling_rate=rate, device=DEVICE)
    with pytest.raises(ValueError, match="expects"):
        extractor(batch, sampling_rate=rate // 2, device=DEVICE)
    for device in (None, DEVICE):
        with pytest.raises(ValueError, match="got an empty batch"):
            extractor([], sampling_rate=rate, device=device)


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_tensor_clips_are_float32_and_detached_like_numpy_clips(name):
    """A float64 tensor that requires grad (e.g. the output of a differentiable augmentation) gives exactly
    the features of the same samples as a numpy array: rounded to float32 first, even with
    computation_dtype=float64, and detached, so return_tensors="np" works and no graph is kept."""
    extractor = EXTRACTORS[name]()
    rate = extractor.sampling_rate
    clips = np.random.default_rng(2).uniform(-0.5, 0.5, (2, rate))
    given = torch.from_numpy(clips).to(DEVICE).requires_grad_(True)
    for batch, reference in ((given, clips), ([given[0], given[1, : rate // 2]], [clips[0], clips[1, : rate // 2]])):
        expected = extractor(reference, sampling_rate=rate, device=DEVICE, computation_dtype=torch.float64,
                             return_tensors="np")
        ours = extractor(batch, sampling_rate=rate, device=DEVICE, computation_dtype=torch.float64, return_tensors="np")
        for key in expected:
            np.testing.assert_array_equal(ours[key], expected[key])
        assert not extractor(batch, sampling_rate=rate, device=DEVICE, return_tensors="pt")["input_values"].requires_grad


def test_fixed_length_tensor_clips_are_checked_like_numpy_clips():
    """With `fixed_clip_seconds` (an exported probe's extractor), both paths check the whole clip for
    integer PCM stored as floats, also past the kept window, and an empty clip becomes silence."""
    from modeling_fusion.audio_input import mono_clips

    clips = np.full((2, 300), 0.1, np.float32)
    clips[1, 250] = 30000.0  # past the 200-sample window
    for given in (clips, torch.from_numpy(clips).to(DEVICE)):
        with pytest.raises(ValueError, match="float samples reach 30000"):
            mono_clips(given, 100, 100, 1, "x", fixed_seconds=2.0, keep_tensors=True)
    for given in ([np.zeros(0, np.float32)], [torch.zeros(0, device=DEVICE)]):
        (fixed,) = mono_clips(given, 100, 100, 1, "x", fixed_seconds=2.0, keep_tensors=True)
        assert fixed.shape == (200,) and not fixed.any()


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_cpu_blocks_match_one_transform(name, monkeypatch):
    """The CPU path transforms blocks of frames; blocks that split clips and rows give the same values."""
    extractor = EXTRACTORS[name]()
    clips = mixed_lengths(extractor)
    whole = torch_values(name, extractor, clips, torch.float32)
    monkeypatch.setattr(spectral, "CPU_BLOCK_FRAMES", 37)
    for ours, reference in zip(torch_values(name, extractor, clips, torch.float32), whole):
        np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=1e-5)


def test_reflect_pad_matches_numpy_per_clip():
    """Each clip reflected at its own end, not at the batch's (the batching trap of centred frames)."""
    rng = np.random.default_rng(2)
    clips = [rng.standard_normal(length) for length in (9, 13, 20)]
    waves = torch.zeros(3, 20, dtype=torch.float64, device=DEVICE)
    for row, clip in enumerate(clips):
        waves[row, : len(clip)] = torch.from_numpy(clip)
    padded = reflect_pad(waves, torch.tensor([len(clip) for clip in clips], device=DEVICE), 4).cpu().numpy()
    for row, clip in enumerate(clips):
        np.testing.assert_array_equal(padded[row, : len(clip) + 8], np.pad(clip, 4, mode="reflect"))
        np.testing.assert_array_equal(padded[row, len(clip) + 8:], 0.0)
