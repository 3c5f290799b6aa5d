"""A converted CNN14 folder works where this package is not installed: Auto classes and pipeline."""

import json

import numpy as np
import pytest
import torch
from panns_reference import random_panns_cnn14

from conftest import SHARED, run_clean_process
from modeling_fusion.convert import main as convert_main
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.modeling_cnn14 import Cnn14ForAudioClassification, Cnn14FusionModel

REMOTE_FILES = {"configuration_cnn14.py", "modeling_cnn14.py", "feature_extraction_cnn14.py", "fusion.py",
                "audio_input.py", "classification.py"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    checkpoint = tmp_path_factory.mktemp("ckpt") / "Cnn14_16k_mAP=0.438.pth"
    torch.save({"iteration": 0, "model": random_panns_cnn14(16000, seed=3).state_dict()}, checkpoint)
    output = tmp_path_factory.mktemp("hub") / "cnn14-16k-fusion-3-6"
    labels = SHARED / "weights" / "audioset_labels.csv"
    argv = ["cnn14", "--checkpoint", str(checkpoint), "--output", str(output), "--layers", "3", "6"]
    convert_main(argv + (["--labels", str(labels)] if labels.exists() else []))
    return output


def clips():
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(16000) * 0.1).astype(np.float32), (rng.standard_normal(27000) * 0.1).astype(np.float32)]


def test_folder_layout_and_auto_map(folder):
    names = {path.name for path in folder.iterdir()}
    assert REMOTE_FILES | {"config.json", "model.safetensors", "preprocessor_config.json"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_cnn14.Cnn14FusionConfig",
        "AutoModel": "modeling_cnn14.Cnn14FusionModel",
        "AutoModelForAudioClassification": "modeling_cnn14.Cnn14ForAudioClassification",
    }
    assert config["problem_type"] == "multi_label_classification" and len(config["id2label"]) == 527
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    assert preprocessor["auto_map"] == {"AutoFeatureExtractor": "feature_extraction_cnn14.Cnn14FeatureExtractor"}
    assert preprocessor["sampling_rate"] == 16000 and "mel_filters" not in preprocessor


def test_clean_process_loads_and_matches(folder, tmp_path):
    script = f"""
    import json, numpy as np, torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification, pipeline
    folder = {str(folder)!r}
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(16000) * 0.1).astype(np.float32), (rng.standard_normal(27000) * 0.1).astype(np.float32)]
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    head = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True).eval()
    features = extractor(clips, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        out = model(**features, output_hidden_states=True)
        logits = head(**features).logits
    classify = pipeline("audio-classification", model=folder, trust_remote_code=True)
    top = classify({{"array": clips[0], "sampling_rate": 16000}}, top_k=3)
    batch = classify([clips[0], clips[1]], batch_size=2, top_k=3)
    print(json.dumps({{
        "classes": [type(config).__name__, type(extractor).__name__, type(model).__name__, type(head).__name__],
        "modules": sorted({{type(model).__module__.split(".")[0], type(head).__module__.split(".")[0]}}),
        "pooler": out.pooler_output.tolist(), "hidden": [h.shape[-1] for h in out.hidden_states],
        "logits": logits.tolist(), "top": top, "batch": batch,
    }}))
    """
    result = run_clean_process(script, tmp_path)
    assert result["classes"] == ["Cnn14FusionConfig", "Cnn14FeatureExtractor", "Cnn14FusionModel",
                                 "Cnn14ForAudioClassification"]
    assert result["modules"] == ["transformers_modules"]
    assert result["hidden"] == [64, 2048, 2048, 2048, 2048, 2048, 4096]

    features = Cnn14FeatureExtractor.from_pretrained(folder)(clips(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        pooler = Cnn14FusionModel.from_pretrained(folder).eval()(**features).pooler_output
        logits = Cnn14ForAudioClassification.from_pretrained(folder).eval()(**features).logits
    assert pooler.shape == (2, 6144)
    np.testing.assert_allclose(result["pooler"], pooler.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result["logits"], logits.numpy(), rtol=1e-5, atol=1e-5)

    probabilities = torch.sigmoid(logits[0])
    order = torch.argsort(probabilities, descending=True)[:3].tolist()
    id2label = Cnn14ForAudioClassification.from_pretrained(folder).config.id2label
    assert [entry["label"] for entry in result["top"]] == [id2label[i] for i in order]
    np.testing.assert_allclose([entry["score"] for entry in result["top"]], probabilities[order].numpy(), rtol=1e-5)
    assert result["batch"][0] == result["top"]
    if (SHARED / "weights" / "audioset_labels.csv").exists():
        assert id2label[0] == "Speech" and id2label[526] == "Field recording"


def test_loading_without_trust_remote_code_fails_clearly(folder, tmp_path):
    script = f"""
    import json
    from transformers import AutoModel
    try:
        AutoModel.from_pretrained({str(folder)!r})
        print(json.dumps({{"error": None}}))
    except ValueError as error:
        print(json.dumps({{"error": str(error)}}))
    """
    assert "trust_remote_code" in run_clean_process(script, tmp_path)["error"]
