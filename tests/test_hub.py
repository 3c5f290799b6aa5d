"""Every published variant builds from an original-layout checkpoint into a folder that works as a
Hub repo: clean-process Auto classes and both pipelines, a card with a model-index, and push."""

import json
import os

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


def test_build_with_results_puts_the_measured_model_index_in_the_card(tmp_path, capsys):
    """`hub build --results` on the committed real mn04 run (a --select-fusion run that also probed the published
    #12#14): the card's model-index holds the card's own fusion's test accuracies (not the run's chosen #4#17), and
    the run's table is in the text; a file that is not a results.json is refused naming it."""
    run = hub.HUB_CONFIGS.parents[2] / "reports" / "efficientat_mn04" / "results.json"
    checkpoint = tmp_path / "mn04_as_mAP_432.pt"
    ORIGINAL_CHECKPOINTS["efficientat-mn04-as-fusion-12-14"](checkpoint)
    hub.main(["build", "efficientat-mn04-as-fusion-12-14", "--checkpoint", str(checkpoint), "--output",
              str(tmp_path / "repo"), "--results", str(run), "--no-verify"])
    card = ModelCard.load(tmp_path / "repo" / "README.md")
    tasks = json.loads(run.read_text())["tasks"]
    expected = {(task["dataset_id"], "linear"): round(task["representations"]["fusion_12_14"]["mean"] * 100, 2)
                for task in tasks.values()}
    measured = {(r.dataset_type, "linear"): r.metric_value for r in card.data.eval_results if "k-NN" not in r.metric_name}
    assert measured == expected and len(expected) == 3
    assert "modeling-fusion/efficientat-mn04-as-fusion-12-14" in card.text  # the variant's hub_id
    with pytest.raises(SystemExit, match="README.md: not JSON"):
        hub.main(["build", "efficientat-mn04-as-fusion-12-14", "--checkpoint", str(checkpoint), "--output",
                  str(tmp_path / "other"), "--results", str(tmp_path / "repo" / "README.md"), "--no-verify"])


def test_every_variant_names_a_hub_repository_and_push_alone_uses_it(tmp_path, monkeypatch):
    from huggingface_hub.utils import validate_repo_id

    for name in hub.variants():
        validate_repo_id(hub.hub_id(name))
        assert hub.hub_id(name).endswith("/" + name)
    pushed = []
    monkeypatch.setattr(hub, "build", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(hub, "push", lambda folder, repo_id, *args: pushed.append(repo_id))
    hub.main(["build", "vggish-fusion-10-15", "--checkpoint", "x", "--output", str(tmp_path), "--push"])
    hub.main(["build", "vggish-fusion-10-15", "--checkpoint", "x", "--output", str(tmp_path), "--push", "me/mine"])
    assert pushed == ["modeling-fusion/vggish-fusion-10-15", "me/mine"]


def test_harness_default_is_the_variants_hub_repository(monkeypatch):
    from modeling_fusion.harness import hear, xares

    assert hear.DEFAULT_MODEL == hub.hub_id("efficientat-mn04-as-fusion-12-14") == xares.DEFAULT_MODEL
    loaded = []

    class Loaded(Exception):
        pass

    def load_model(model):
        loaded.append(model)
        raise Loaded

    monkeypatch.delenv("FUSION_XARES_MODEL", raising=False)
    monkeypatch.setattr(xares, "load_model", load_model)
    with pytest.raises(Loaded):
        xares.FusionEncoder()
    assert loaded == ["modeling-fusion/efficientat-mn04-as-fusion-12-14"]


def test_yamnet_without_labels_names_its_own_class_map(tmp_path, caplog):
    checkpoint = tmp_path / "yamnet.tflite"
    ORIGINAL_CHECKPOINTS["yamnet-fusion-6-14"](checkpoint)
    hub.build("yamnet-fusion-6-14", checkpoint, tmp_path / "repo", verify=False)
    assert "--labels yamnet_class_map.csv" in caplog.text and "class_labels_indices" not in caplog.text


def test_built_files_follow_the_umask(built):
    _, folder = built
    umask = os.umask(0)
    os.umask(umask)
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in folder.iterdir() if path.is_file()} == {
        path.name: oct(0o666 & ~umask) for path in folder.iterdir() if path.is_file()}
