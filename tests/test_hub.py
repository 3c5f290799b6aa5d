"""Every published variant builds from an original-layout checkpoint into a folder that works as a
Hub repo: clean-process Auto classes and both pipelines, a card with a model-index, and push."""

import json

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from original_checkpoints import ORIGINAL_CHECKPOINTS

from conftest import SHARED, run_clean_process
from modeling_fusion import inference
from modeling_fusion.hub import publish as hub
from transformers import AutoFeatureExtractor, AutoModel


def test_every_variant_has_an_original_checkpoint_test():
    assert sorted(ORIGINAL_CHECKPOINTS) == hub.variants()


@pytest.fixture(scope="module", params=hub.variants())
def built(request, tmp_path_factory):
    name = request.param
    work = tmp_path_factory.mktemp(name)
    checkpoint = work / hub.load_variant(name)["variant"]["source"]["file_name"]
    ORIGINAL_CHECKPOINTS[name](checkpoint)
    labels = SHARED / "weights" / hub.load_variant(name)["variant"].get("labels_file", "audioset_labels.csv")
    folder = hub.build(name, checkpoint, work / "repo", labels=labels if labels.exists() else None,
                       repo_id=f"someone/{name}", verify=False)
    return name, folder


def test_clean_process_matches_package(built, tmp_path):
    name, folder = built
    rate = json.loads((folder / "preprocessor_config.json").read_text())["sampling_rate"]
    script = f"""
    import json, numpy as np, torch
    from transformers import AutoFeatureExtractor, AutoModel, pipeline
    folder, rate = {str(folder)!r}, {rate}
    audio = (np.random.default_rng(0).standard_normal(int(1.7 * rate)) * 0.1).astype(np.float32)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
    with torch.no_grad():
        pooled = model(**extractor(audio, sampling_rate=rate, return_tensors="pt")).pooler_output[0]
    embed = pipeline("audio-embedding", model=folder, trust_remote_code=True)
    result = embed(audio, per_layer=True)
    config = json.load(open(folder + "/config.json"))
    out = {{"pooled": pooled.tolist(), "pipeline": result["embedding"].tolist(),
            "layers": [layer.tolist() for layer in result["layers"]]}}
    if config["architectures"][0].endswith("ForAudioClassification"):  # published with a trained head
        out["top"] = pipeline("audio-classification", model=folder, trust_remote_code=True)(audio, top_k=2)
    print(json.dumps(out))
    """
    result = run_clean_process(script, tmp_path)
    model = AutoModel.from_pretrained(folder).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    audio = (np.random.default_rng(0).standard_normal(int(1.7 * rate)) * 0.1).astype(np.float32)
    with torch.no_grad():
        out = model(**extractor(audio, sampling_rate=rate, return_tensors="pt"), output_hidden_states=True)
    np.testing.assert_allclose(result["pooled"], out.pooler_output[0].numpy(), rtol=1e-5, atol=1e-6)
    step = inference.embed(model, extractor, [audio], rate, output_hidden_states=True)  # the pipeline's front end
    np.testing.assert_allclose(result["pipeline"], step.pooler_output[0].numpy(), rtol=1e-5, atol=1e-6)
    assert len(result["layers"]) == len(step.hidden_states)
    for layer, pooled in zip(result["layers"], step.pooled_hidden_states):
        np.testing.assert_allclose(layer, pooled[0].numpy(), rtol=1e-5, atol=1e-6)
    if "top" in result:
        assert len(result["top"]) == 2 and result["top"][0]["score"] >= result["top"][1]["score"]


def test_card_round_trips_with_model_index(built):
    name, folder = built
    card = ModelCard.load(folder / "README.md")
    variant = hub.load_variant(name)["variant"]
    assert card.data.license == variant["source"]["license"]
    assert card.data.library_name == "transformers" and "custom_code" in card.data.tags
    assert f"someone/{name}" in card.text
    if variant["card"].get("paper_row"):
        results = card.data.eval_results
        assert len(results) == 9 and all(r.metric_type == "accuracy" for r in results)
    assert f"converted from {variant['source']['file_name']} (" in (folder / "LICENSE").read_text()


class FakeHfApi:
    """Stand-in at the HfApi boundary: records calls, or fails like the network does."""

    def __init__(self, fail=None):
        self.calls, self.fail = [], fail

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        if self.fail:
            raise self.fail

    def upload_folder(self, folder_path, repo_id, **kwargs):
        self.calls.append(("upload_folder", repo_id, sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir()), kwargs))
        return "https://huggingface.co/commit/0"


def test_push_uploads_the_folder(built, monkeypatch):
    name, folder = built
    monkeypatch.setattr(hub, "get_token", lambda: "hf_fake")
    api = FakeHfApi()
    hub.push(folder, f"someone/{name}", name, api=api)
    assert api.calls[0] == ("create_repo", f"someone/{name}", {"repo_type": "model", "private": False, "exist_ok": True})
    kind, repo, files, kwargs = api.calls[1]
    assert kind == "upload_folder" and repo == f"someone/{name}"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "LICENSE"} <= set(files)
    assert kwargs["commit_message"] == f"Upload {name} (modeling-fusion)"


def test_push_failures_are_clear_and_keep_the_folder(built, monkeypatch):
    name, folder = built
    before = sorted(p.name for p in folder.iterdir())
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(ValueError, match="hf auth login"):
        hub.push(folder, "someone/x", name, api=FakeHfApi())
    monkeypatch.setattr(hub, "get_token", lambda: "hf_fake")
    with pytest.raises(ValueError, match="local folder is intact"):
        hub.push(folder, "someone/x", name, api=FakeHfApi(fail=ConnectionError("network is unreachable")))
    assert sorted(p.name for p in folder.iterdir()) == before


def test_wrong_checkpoint_for_variant_is_refused(tmp_path):
    checkpoint = tmp_path / "Cnn14_mAP=0.431.pth"
    ORIGINAL_CHECKPOINTS["cnn14-32k-fusion-3-6"](checkpoint)
    with pytest.raises(ValueError, match="disagrees|variant publishes"):
        hub.build("cnn14-16k-fusion-3-6", checkpoint, tmp_path / "out", verify=False)


def test_unknown_variant_lists_the_published_ones():
    with pytest.raises(ValueError, match="cnn14-16k-fusion-3-6"):
        hub.load_variant("cnn15")
