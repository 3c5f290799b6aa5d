"""`fusion-eval` end to end: a slice of ../shared/data/fsdd with a tiny random CNN14, a tiny random
wav2vec2 baseline, and unreadable files."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import shared_path
from eval_testing import synthetic_folder, tiny_cnn14_folder
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from fusion_eval.clips import fix_length
from fusion_eval.cache import ViewCache
from fusion_eval.cli import main
from fusion_eval.datasource import load_table
from fusion_eval.probes.linear import ProbeRandomness, linear_probe
from fusion_eval.representations import Embedder
from fusion_eval.tasks import resolve_task
from modeling_fusion.fusion import pool_frames


def cached(cache_dir, pattern):
    (directory,) = [d for d in cache_dir.glob(f"*/*/{pattern}") if d.is_dir()]
    meta = json.loads((directory / "meta.json").read_text())
    chunks = [np.load(f)["rows"] for f in sorted(directory.glob("*.info.npz"))]
    return ViewCache(directory, np.concatenate(chunks), len(chunks[0]), meta)


def test_fsdd_slice_sweep(tmp_path):
    data = shared_path("data", "fsdd")
    frame = pd.read_csv(data / "metadata.csv")
    keep = frame.speaker.isin(["george", "jackson"]) & frame["take"].isin(list(range(0, 2)) + list(range(5, 15)))
    (tmp_path / "meta").mkdir()
    frame[keep].to_csv(tmp_path / "meta" / "fsdd.csv", index=False)  # 200 train, 40 test clips
    model = tiny_cnn14_folder(tmp_path / "model")
    args = ["--model", str(model), "--task", "fsdd", "fsdd-speaker", "--sweep", "--seeds", "42", "43",
            "--data-dir", str(data.parent), "--metadata-dir", str(tmp_path / "meta"),
            "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out"), "--batch-size", "16"]
    main(args)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    fsdd = results["tasks"]["fsdd"]
    keys = [f"layer_{l}" for l in range(1, 7)] + ["fusion_3_6", "plain"]
    assert list(fsdd["representations"]) == keys
    assert fsdd["timings"]["clips_encoded"] == 240 and fsdd["bad_files"] == []
    assert results["tasks"]["fsdd-speaker"]["timings"]["clips_encoded"] == 0, "same clips and rule: cache hit"

    # The test clips' cached embeddings are the model's output on the first second of each clip (features
    # from the torch front end on the extraction device, as fusion-eval computes them).
    embedder = Embedder(str(model), sweep=True)
    task = resolve_task("fsdd")
    table = load_table(task, data.parent, 16000, tmp_path / "meta")
    start = cached(tmp_path / "cache", "start-*")
    rows = start.rows[:4]
    clips = [fix_length(table.wave(int(r)), 16000) for r in rows]
    direct = embedder.embed(embedder.feature_extractor(clips, sampling_rate=16000, return_tensors="pt", device="cpu"))
    for key in ("fusion_3_6", "layer_2", "plain"):
        np.testing.assert_allclose(start.load(key)[:4], direct[key].numpy(), rtol=1e-5, atol=1e-7 * direct[key].abs().max().item())

    # The reported accuracy is the probe on those arrays: train clips from the random view, labels by digit.
    shuffled = cached(tmp_path / "cache", "random42-*")
    train, test = np.flatnonzero(table.split == "train"), np.flatnonzero(table.split == "test")
    np.testing.assert_array_equal(shuffled.rows, train)
    np.testing.assert_array_equal(start.rows, test)
    labels = table.labels.astype(int)
    probe = linear_probe(shuffled.load("fusion_3_6"), labels[train], start.load("fusion_3_6"), labels[test], 10,
                         ProbeRandomness(42))
    assert fsdd["representations"]["fusion_3_6"]["seeds"]["42"]["accuracy"] == probe.accuracy
    means = [fsdd["representations"][k]["mean"] for k in keys]
    assert all(0 <= m <= 1 for m in means) and max(means) > 0.3, "a random CNN14 still separates some digits"

    table_md = (tmp_path / "out" / "results.md").read_text()
    fusion = fsdd["representations"]["fusion_3_6"]
    assert f"| CNN14-Fusion#3#6 | {fusion['mean'] * 100:.1f}±{fusion['std'] * 100:.1f} |" in table_md
    assert (tmp_path / "out" / "layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = yaml.safe_load((tmp_path / "out" / "model_index.yaml").read_text())["model-index"][0]
    assert index["name"] == "CNN14-Fusion#3#6"
    assert index["results"][0]["metrics"][0]["value"] == round(fusion["mean"] * 100, 2)
    assert results["versions"]["torch"] and results["settings"]["num_processes"] == 1


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    root = tmp_path_factory.mktemp("tones")
    synthetic_folder(root / "tones", clips_per_fold=12, folds=(1, 2, 3))
    return root


def test_transformers_baseline_layers(tones, tmp_path):
    """A tiny random wav2vec2: each hidden state mean+max pooled is one representation."""
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_feat_extract_layers=2,
                            num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, vocab_size=8)
    Wav2Vec2Model(config).save_pretrained(tmp_path / "w2v")
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(tmp_path / "w2v")
    main(["--model", str(tmp_path / "w2v"), "--task", str(tones / "tones"), "--unit-sec", "1.0", "--fold-column",
          "fold", "--sweep", "--layers", "1", "2", "--seeds", "42", "--cache-dir", str(tmp_path / "cache"),
          "--output", str(tmp_path / "out")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["tones"]
    assert list(results["representations"]) == ["layer_0", "layer_1", "layer_2", "fusion_1_2"]
    assert results["runs"] == ["fold 1", "fold 2", "fold 3"]
    start = cached(tmp_path / "cache", "start-*")
    table = load_table(resolve_task(str(tones / "tones"), unit_sec=1.0, fold_column="fold"), tones, 16000)
    clip = fix_length(table.wave(5), 16000)
    model = Wav2Vec2Model.from_pretrained(tmp_path / "w2v").eval()
    features = Wav2Vec2FeatureExtractor.from_pretrained(tmp_path / "w2v")(clip, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**features, output_hidden_states=True).hidden_states
    expected = [pool_frames(h, "mean+max")[0].numpy() for h in hidden]
    for layer in range(3):
        np.testing.assert_allclose(start.load(f"layer_{layer}")[5], expected[layer], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(start.load("fusion_1_2")[5], np.concatenate(expected[1:]), rtol=1e-4, atol=1e-5)


def test_unreadable_file_stops_or_is_skipped(tones, tmp_path, capsys):
    folder = tmp_path / "broken"
    frame = synthetic_folder(folder, clips_per_fold=40, folds=(1, 2))
    (folder / frame.file_name[4]).write_bytes(b"garbage" * 100)
    model = tiny_cnn14_folder(tmp_path / "model")
    args = ["--model", str(model), "--task", str(folder), "--unit-sec", "1.0", "--seeds", "42",
            "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")]
    with pytest.raises(SystemExit):
        main(args)
    assert f"cannot decode audio file {frame.file_name[4]}" in capsys.readouterr().err
    main(args + ["--skip-bad"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["broken"]
    assert results["bad_files"] == [frame.file_name[4]]
    fusion = results["representations"]["fusion_3_6"]["seeds"]["42"]["runs"][0]
    assert (fusion["train"], fusion["test"]) == (39, 40), "the bad training clip is left out"
