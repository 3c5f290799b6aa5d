"""`fusion-eval` end to end (speaker task) on a slice of ../shared/data/fsdd (40 clips, 2 speakers) for every encoder family, given
as a converted fusion folder or as the plain encoder checkpoint (Whisper: encoder-decoder, CLAP: text +
audio), and the wav2vec2-base hub variant built offline from a local folder."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from encoder_testing import save_tiny_encoder
from original_checkpoints import wav2vec2_base_folder
from transformers import AutoFeatureExtractor, Wav2Vec2Model

from conftest import shared_path
from fusion_eval.clips import fix_length
from fusion_eval.cache import ViewCache
from fusion_eval.cli import main
from fusion_eval.datasource import load_table
from fusion_eval.tasks import resolve_task
from modeling_fusion.hub import publish as hub
from modeling_fusion.convert import main as convert_main
from modeling_fusion.modeling_encoder_fusion import EncoderFusionModel

# (family, converted folder?) : wav2vec2-family encoders as fusion folders, Whisper and CLAP as plain ids
CASES = [("wav2vec2", True), ("hubert", True), ("wavlm", True), ("data2vec-audio", True), ("whisper", False),
         ("clap", False), ("ast", True)]


@pytest.fixture(scope="module")
def fsdd_slice(tmp_path_factory):
    data = shared_path("data", "fsdd")
    frame = pd.read_csv(data / "metadata.csv")
    keep = frame.speaker.isin(["george", "jackson"]) & frame["take"].isin([0, 10])  # 20 test, 20 train clips
    meta = tmp_path_factory.mktemp("meta")
    frame[keep].to_csv(meta / "fsdd.csv", index=False)
    return data, meta


def cached_start(cache_dir):
    """The "start" view's cache: the test clips' embeddings, as fusion-eval stored them."""
    (directory,) = [d for d in cache_dir.glob("*/*/start-*") if d.is_dir()]
    chunks = [np.load(f)["rows"] for f in sorted(directory.glob("*.info.npz"))]
    return ViewCache(directory, np.concatenate(chunks), len(chunks[0]), json.loads((directory / "meta.json").read_text()))


@pytest.mark.parametrize("family,converted", CASES)
def test_fusion_eval_on_fsdd(family, converted, fsdd_slice, tmp_path):
    data, meta = fsdd_slice
    model = save_tiny_encoder(family, tmp_path / f"{family}-encoder")
    if converted:
        convert_main(["encoder", "--checkpoint", str(model), "--output", str(tmp_path / family), "--layers", "1", "2"])
        model = tmp_path / family
    args = ["--model", str(model), "--task", "fsdd-speaker", "--seeds", "42", "--data-dir", str(data.parent),
            "--metadata-dir", str(meta), "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out"),
            "--batch-size", "8"] + ([] if converted else ["--layers", "1", "2"])
    main(args)
    run = json.loads((tmp_path / "out" / "results.json").read_text())
    results = run["tasks"]["fsdd-speaker"]
    assert "fusion_1_2" in results["representations"] and results["timings"]["clips_encoded"] == 40
    baseline = "plain" if converted else f"layer_{run['model']['num_layers']}"  # a plain encoder: its last layer
    assert baseline in results["representations"]
    accuracy = results["representations"]["fusion_1_2"]["seeds"]["42"]["accuracy"]
    assert 0.0 <= accuracy <= 1.0

    # the cached test embeddings are the fusion model's pooler on each clip's first second, real frames only
    fused = (EncoderFusionModel.from_pretrained(model) if converted
             else EncoderFusionModel.from_encoder_pretrained(model, fusion_layers=[1, 2])).eval()
    extractor = AutoFeatureExtractor.from_pretrained(model)
    extractor.return_attention_mask = True
    rate = extractor.sampling_rate
    cache = cached_start(tmp_path / "cache")
    table = load_table(resolve_task("fsdd-speaker"), data.parent, rate, meta)
    waves = [fix_length(table.wave(int(row)), rate) for row in cache.rows[:3]]
    with torch.no_grad():
        expected = fused(**extractor(waves, sampling_rate=rate, return_tensors="pt")).pooler_output.numpy()
    stored = cache.load("fusion_1_2")[:3]
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_hub_variant_builds_offline_from_a_local_folder(tmp_path):
    source = tmp_path / "wav2vec2-base"
    wav2vec2_base_folder(source)
    folder = hub.build("wav2vec2-base-fusion-6-12", source, tmp_path / "repo", repo_id="someone/w2v")
    model = EncoderFusionModel.from_pretrained(folder)
    assert model.config.fusion_layers == [6, 12] and model.config.hidden_size == 2 * 16
    original = Wav2Vec2Model.from_pretrained(source).state_dict()
    assert all(torch.equal(model.encoder.state_dict()[key], value) for key, value in original.items())
    assert "facebook/wav2vec2-base" in (folder / "LICENSE").read_text()
    assert AutoFeatureExtractor.from_pretrained(folder).return_attention_mask is True
