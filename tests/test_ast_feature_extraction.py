"""AstFusionFeatureExtractor: Kaldi fbank, whole-clip and max_length modes, dataset statistics, bad input."""

import json

import numpy as np
import pytest
import torch
from ast_reference import TINY, input_frames, kaldi_fbank
from transformers import ASTFeatureExtractor

from modeling_fusion import AstFusionConfig, AstFusionFeatureExtractor, AstFusionModel

AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974


def noise(seconds, seed=0):
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def sine(seconds):
    return (0.5 * np.sin(2 * np.pi * 1000 * np.arange(int(seconds * 16000)) / 16000)).astype(np.float32)


@pytest.mark.parametrize("audio", [noise(1.0), sine(1.3), noise(0.175)], ids=["noise", "sine", "shortest"])
def test_fbank_matches_an_independent_kaldi_fbank(audio):
    # transformers' numpy path here (torchaudio absent) vs a float64 re-derivation: float32 rounding only
    ours = AstFusionFeatureExtractor().log_fbank(audio)
    expected = kaldi_fbank(audio)
    assert ours.shape == expected.shape == (input_frames(len(audio)), 128)
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)


def test_whole_clip_mode_normalises_each_clip_at_its_own_length():
    clips = [noise(1.0, 1), noise(2.5, 2)]
    out = AstFusionFeatureExtractor()(clips, sampling_rate=16000)
    values, mask = out["input_values"], out["attention_mask"]
    assert values.shape == (2, 248, 128) and mask.sum(axis=1).tolist() == [98, 248]
    for row, audio in enumerate(clips):
        frames = input_frames(len(audio))
        expected = (kaldi_fbank(audio) - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)
        np.testing.assert_allclose(values[row, :frames], expected, atol=1e-5, rtol=0)
        assert not values[row, frames:].any()


@pytest.mark.parametrize("seconds", [1.0, 12.0])
def test_max_length_mode_is_transformers_ast_extractor(seconds):
    audio = noise(seconds)
    ours = AstFusionFeatureExtractor(pad_to_max_length=True)(audio, sampling_rate=16000)
    theirs = ASTFeatureExtractor()(audio, sampling_rate=16000, return_tensors="np")
    assert ours["input_values"].shape == (1, 1024, 128)
    assert np.array_equal(ours["input_values"], theirs["input_values"])
    assert ours["attention_mask"].all()
    if seconds < 10:  # zero fbank rows padded before normalising, as in AST
        assert np.allclose(ours["input_values"][0, 98:], AUDIOSET_MEAN / (-2 * AUDIOSET_STD))


def test_dataset_statistics_are_fitted_and_saved(tmp_path):
    clips = [noise(1.0, 1), sine(0.6), noise(3.0, 2) * 0.01]
    extractor = AstFusionFeatureExtractor().fit_normalization(iter(clips), sampling_rate=16000)
    everything = np.concatenate([kaldi_fbank(audio).ravel() for audio in clips])
    np.testing.assert_allclose([extractor.mean, extractor.std], [everything.mean(), everything.std()], rtol=1e-6)
    extractor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert (saved["mean"], saved["std"]) == (extractor.mean, extractor.std)
    assert "mel_filters" not in saved and "window" not in saved
    reloaded = AstFusionFeatureExtractor.from_pretrained(tmp_path)
    values = reloaded(clips[0], sampling_rate=16000)["input_values"][0]
    np.testing.assert_allclose(values, (kaldi_fbank(clips[0]) - extractor.mean) / (2 * extractor.std), atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        AstFusionFeatureExtractor().fit_normalization([], sampling_rate=16000)


BAD_INPUTS = [
    (dict(raw_audio=noise(1.0), sampling_rate=44100), "44100 Hz"),
    (dict(raw_audio=np.zeros(0, np.float32), sampling_rate=16000), "empty"),
    (dict(raw_audio=noise(0.17), sampling_rate=16000), "at least 2800 samples"),
    (dict(raw_audio=np.full(16000, np.nan, np.float32), sampling_rate=16000), "NaN"),
    (dict(raw_audio=np.zeros((16000, 2), np.float32), sampling_rate=16000), "2-channel"),
    (dict(raw_audio=np.zeros(16000, np.uint16), sampling_rate=16000), "dtype uint16"),  # int16 is scaled
]


@pytest.mark.parametrize("kwargs, message", BAD_INPUTS, ids=["rate", "empty", "short", "nan", "stereo", "uint16"])
def test_bad_audio_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AstFusionFeatureExtractor()(**kwargs)


def test_bad_model_input_is_rejected():
    model = AstFusionModel(AstFusionConfig(ast_config=TINY, fusion_layers=[1])).eval()
    with pytest.raises(ValueError, match=r"\[batch, frames, 128\]"):
        model(torch.zeros(1, 100, 64))
    with pytest.raises(ValueError, match="at least 16 frames"):
        model(torch.zeros(1, 15, 128))
    mask = torch.ones(2, 100, dtype=torch.long)
    mask[1, 10:] = 0
    with pytest.raises(ValueError, match="at least 16 frames"):
        model(torch.zeros(2, 100, 128), attention_mask=mask)
