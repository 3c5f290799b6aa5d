"""VGGish front end: our batched torch log-mel vs TF's numpy reference (as shipped by PyPI torchvggish).

Tolerance: 1e-5 absolute on log-mel values of magnitude <= ~10. Both sides window, FFT and take
magnitudes in float64 (torch.fft vs numpy.fft). Ours then projects to mel and takes the log in
float32: sums of non-negative terms, so ~1e-7 relative error, which the log turns into the same
absolute error, plus float32 rounding of the output (<= 4.8e-7 at |x| < 8). Measured: <= 4.0e-7
on random audio at five levels (1 to 1e-4) and on 33 real clips. 1e-5 still catches any change of
window, framing, mel matrix or log offset (each moves values by >= 1e-3).
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from vggish_reference import mel_features, reference_examples

from conftest import shared_path
from modeling_fusion import feature_extraction_vggish
from modeling_fusion.feature_extraction_vggish import VGGishFeatureExtractor, htk_mel_filters

RATE = 16000
ATOL = 1e-5


def extract(clips, **kwargs):
    return VGGishFeatureExtractor()(clips, sampling_rate=RATE, return_tensors="np", **kwargs)


def test_mel_matrix_matches_reference():
    reference = mel_features.spectrogram_to_mel_matrix(64, 257, RATE, 125.0, 7500.0)
    np.testing.assert_allclose(htk_mel_filters(RATE, 512, 64, 125.0, 7500.0), reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seconds", [0.975, 1.0, 2.9, 4.0, 10.0])
def test_random_audio_matches_reference(seconds):
    audio = np.random.default_rng(int(seconds * 100)).uniform(-1, 1, int(seconds * RATE)).astype(np.float32)
    ours = extract(audio)
    expected = reference_examples(audio)
    assert ours["input_values"].shape == (1, *expected.shape) and ours["input_values"].dtype == np.float32
    np.testing.assert_allclose(ours["input_values"][0], expected, rtol=0, atol=ATOL)
    assert ours["attention_mask"].tolist() == [[1] * len(expected)]


def test_real_audio_matches_reference():
    """A 1 s Speech Commands clip and a 4 s UrbanSound8K clip, in one padded batch."""
    speech, rate1 = sf.read(shared_path("data", "speech_commands_v2_test", "audio", "down",
                                        "022cd682_nohash_0.flac"), dtype="float32")
    street, rate2 = sf.read(shared_path("data", "urbansound8k_3folds", "audio", "fold1", "101415-3-0-2.ogg"),
                            dtype="float32")
    assert rate1 == rate2 == RATE
    ours = extract([speech, street])
    for row, clip in enumerate([speech, street]):
        expected = reference_examples(clip)
        np.testing.assert_allclose(ours["input_values"][row, : len(expected)], expected, rtol=0, atol=ATOL)
    assert ours["attention_mask"].tolist() == [[1, 0, 0, 0], [1, 1, 1, 1]]
    assert np.all(ours["input_values"][0, 1:] == 0.0)  # padded examples hold padding_value


def test_smoke_test_signal_statistics():
    """backbones.md 1.6: the current TF smoke-test sine (3 s, 1 kHz, generated at 16 kHz), computed there
    with an independent float64 re-derivation: mean -3.42962, std 2.12658, max 4.81112 at band 19."""
    sine = np.sin(2 * np.pi * 1000 * np.arange(0, 3, 1 / RATE)).astype(np.float32)
    values = extract(sine)["input_values"][0]
    assert values.shape == (3, 96, 64)
    np.testing.assert_allclose([values.mean(), values.std(), values.max()], [-3.42962, 2.12658, 4.81112], atol=2e-5)
    assert np.unravel_index(values.argmax(), values.shape)[2] == 19
    np.testing.assert_allclose(values[0, 0, :3], [-4.48313, -4.27083, -4.17064], atol=2e-5)


@pytest.mark.parametrize("samples", [1, 400, 8000, 15599])
def test_short_audio_is_zero_padded_to_one_example(samples):
    """Under 15600 samples (0.975 s) the reference gives no example; we zero-pad to one example."""
    audio = np.random.default_rng(samples).uniform(-0.5, 0.5, samples).astype(np.float32)
    ours = extract(audio)
    padded = np.pad(audio.astype(np.float64), (0, 15600 - samples))
    assert ours["input_values"].shape == (1, 1, 96, 64) and ours["attention_mask"].tolist() == [[1]]
    np.testing.assert_allclose(ours["input_values"][0], reference_examples(padded), rtol=0, atol=ATOL)


def test_example_counts_follow_the_reference():
    extractor = VGGishFeatureExtractor()
    counts = {n: extractor.num_examples(n) for n in [0, 15600, 15600 + 95 * 160 - 1, 15600 + 96 * 160, 160000]}
    assert counts == {0: 1, 15600: 1, 15600 + 95 * 160 - 1: 1, 15600 + 96 * 160: 2, 160000: 10}


@pytest.mark.parametrize("frames_per_block", [1024, 200])
def test_batch_equals_single_clips_and_blocks(monkeypatch, frames_per_block):
    """Mixed lengths in one batch match clip-by-clip extraction, also when blocks split clips and rows."""
    monkeypatch.setattr(feature_extraction_vggish, "FRAMES_PER_BLOCK", frames_per_block)
    rng = np.random.default_rng(7)
    clips = [rng.uniform(-1, 1, n).astype(np.float32) for n in (5000, 16000 * 7, 46000, 20000, 16000)]
    batch = extract(clips)
    assert batch["input_values"].shape == (5, 7, 96, 64)
    assert batch["attention_mask"].sum(axis=1).tolist() == [1, 7, 2, 1, 1]
    for row, clip in enumerate(clips):
        expected = reference_examples(clip)
        np.testing.assert_allclose(batch["input_values"][row, : len(expected)], expected, rtol=0, atol=ATOL)
        np.testing.assert_array_equal(batch["input_values"][row, : len(expected)], extract(clip)["input_values"][0])


def test_preprocessor_config_has_no_derived_arrays(tmp_path):
    extractor = VGGishFeatureExtractor()
    extractor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert "mel_filters" not in saved and "window" not in saved
    assert saved["sampling_rate"] == RATE and saved["window_length"] == 400 and saved["f_min"] == 125.0
    reloaded = VGGishFeatureExtractor.from_pretrained(tmp_path)
    assert torch.equal(reloaded.mel_filters, extractor.mel_filters) and torch.equal(reloaded.window, extractor.window)


@pytest.mark.parametrize(
    "audio,kwargs,message",
    [
        (np.zeros(0, np.float32), {}, "empty"),
        (np.full(16000, np.nan, np.float32), {}, "NaN or Inf"),
        (np.zeros(16000, np.float32), {"sampling_rate": 44100}, "expects 16000 Hz"),
        (np.zeros((16000, 2), np.float32), {}, "2-channel"),
        ([np.zeros((2, 16000), np.float32)], {}, "mono 1-D"),
        (np.ones(16000, np.uint16), {}, "dtype uint16"),  # int16 PCM is scaled, see test_input_paths
    ],
)
def test_bad_input_raises_clear_error(audio, kwargs, message):
    kwargs = {"sampling_rate": RATE, **kwargs}
    with pytest.raises(ValueError, match=message):
        VGGishFeatureExtractor()(audio, **kwargs)
