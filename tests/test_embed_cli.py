"""fusion-embed: a folder or audiofolder -> npz of clip (and per-layer) embeddings, resumable, clear errors."""

import numpy as np
import pytest
import soundfile as sf
import torch
from eval_testing import tiny_cnn14_folder

from modeling_fusion.cli import embed
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.modeling_cnn14 import Cnn14FusionModel


@pytest.fixture
def audio_dir(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    for name, rate, seconds in (("a.wav", 16000, 1.0), ("sub/b.flac", 8000, 2.2), ("c.wav", 44100, 0.7)):
        sf.write(folder / name, (rng.standard_normal(int(rate * seconds)) * 0.1).astype(np.float32), rate)
    return folder


def test_embeddings_match_the_model(audio_dir, tmp_path):
    model_dir = tiny_cnn14_folder(tmp_path / "model")
    embed.main([str(model_dir), str(audio_dir), "--output", str(tmp_path / "out.npz"), "--per-layer",
                "--batch-size", "2"])
    saved = np.load(tmp_path / "out.npz")
    assert [p.split("/audio/")[1] for p in saved["files"]] == ["a.wav", "c.wav", "sub/b.flac"]
    model, extractor = Cnn14FusionModel.from_pretrained(model_dir).eval(), Cnn14FeatureExtractor.from_pretrained(model_dir)
    for row, path in enumerate(saved["files"]):
        clip = embed.load_audio(path, 16000)
        with torch.no_grad():
            out = model(**extractor(clip, sampling_rate=16000, return_tensors="pt"), output_hidden_states=True)
        np.testing.assert_allclose(saved["embeddings"][row], out.pooler_output[0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(saved["layer_3"][row], out.pooled_hidden_states[3][0].numpy(), rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "out.npz.partial.npz").exists()


def test_resume_skips_embedded_files(audio_dir, tmp_path, monkeypatch):
    model_dir = tiny_cnn14_folder(tmp_path / "model")
    monkeypatch.setattr(embed, "SAVE_EVERY", 1)
    read = embed.read_clip
    calls = []

    def failing_read(path, extractor):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is stopped after the first batch was saved
        return read(path, extractor)

    monkeypatch.setattr(embed, "read_clip", failing_read)
    argv = [str(model_dir), str(audio_dir), "--output", str(tmp_path / "out.npz"), "--batch-size", "2"]
    with pytest.raises(KeyboardInterrupt):
        embed.main(argv)
    assert (tmp_path / "out.npz.partial.npz").exists()
    calls.clear()
    embed.main(argv)
    assert len(calls) == 1  # only the file of the unfinished batch is read again
    fresh = tmp_path / "fresh.npz"
    monkeypatch.setattr(embed, "read_clip", read)
    embed.main(argv[:3] + [str(fresh), "--batch-size", "2"])
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["embeddings"], np.load(fresh)["embeddings"], rtol=1e-6)


def test_missing_model_says_what_to_do(audio_dir, tmp_path):
    with pytest.raises(SystemExit, match="model folder someone/not-here does not exist, and the Hugging Face Hub"):
        embed.main(["someone/not-here", str(audio_dir), "--output", str(tmp_path / "out.npz")])


def test_random_weights_demo_is_named(audio_dir, tmp_path, caplog):
    embed.main(["--random-weights-demo", "cnn14", str(audio_dir), "--output", str(tmp_path / "demo.npz")])
    assert "RANDOM-WEIGHTS DEMO" in caplog.text
    assert np.load(tmp_path / "demo.npz")["embeddings"].shape == (3, 6144)


def test_not_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="is not a folder"):
        embed.main(["--random-weights-demo", "cnn14", str(tmp_path / "nope"), "--output", str(tmp_path / "o.npz")])


def test_files_run_shortest_first_and_come_back_in_file_order(tmp_path, monkeypatch):
    """A batch runs one model forward per distinct length, so similar lengths are batched together (files
    in listing order gave nearly one forward per file); the output keeps the listing order."""
    folder = tmp_path / "audio"
    folder.mkdir()
    seconds = {"a.wav": 2.0, "b.wav": 0.5, "c.wav": 2.0, "d.wav": 0.5}
    for name, length in seconds.items():
        sf.write(folder / name, np.full(int(16000 * length), 0.1, np.float32), 16000)
    read = embed.read_clip
    order = []
    monkeypatch.setattr(embed, "read_clip", lambda path, extractor: order.append(path.name) or read(path, extractor))
    model_dir = tiny_cnn14_folder(tmp_path / "model")
    embed.main([str(model_dir), str(folder), "--output", str(tmp_path / "out.npz"), "--batch-size", "2"])
    assert order == ["b.wav", "d.wav", "a.wav", "c.wav"]  # two batches of one length each: two forwards
    saved = np.load(tmp_path / "out.npz")
    assert [p.rsplit("/", 1)[1] for p in saved["files"]] == sorted(seconds)
    np.testing.assert_allclose(saved["embeddings"][0], saved["embeddings"][2], rtol=1e-6)  # a == c
    assert not np.allclose(saved["embeddings"][0], saved["embeddings"][1])
