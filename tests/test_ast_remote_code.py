"""A converted AST folder works where this package is not installed: Auto classes and pipeline."""

import json

import numpy as np
import pytest
import torch
from ast_reference import random_ast_head
from transformers import ASTFeatureExtractor

from conftest import SHARED, run_clean_process
from modeling_fusion.convert import main as convert_main
from modeling_fusion.feature_extraction_ast import AstFusionFeatureExtractor
from modeling_fusion.modeling_ast import AstFusionForAudioClassification, AstFusionModel

REMOTE_FILES = {"configuration_ast.py", "modeling_ast.py", "feature_extraction_ast.py", "fusion.py",
                "audio_input.py", "classification.py"}
SMALL = dict(hidden_size=128, num_attention_heads=2, num_hidden_layers=2, intermediate_size=160)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    source = tmp_path_factory.mktemp("hf") / "ast-tiny"
    random_ast_head(seed=7, num_labels=527, **SMALL).save_pretrained(source)
    ASTFeatureExtractor().save_pretrained(source)
    output = tmp_path_factory.mktemp("hub") / "ast-fusion-1-2"
    labels = SHARED / "weights" / "audioset_labels.csv"
    argv = ["ast", "--checkpoint", str(source), "--output", str(output), "--layers", "1", "2"]
    convert_main(argv + (["--labels", str(labels)] if labels.exists() else []))
    return output


def clips():
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (8000, 40000)]


def test_folder_layout_and_auto_map(folder):
    names = {path.name for path in folder.iterdir()}
    assert REMOTE_FILES | {"config.json", "model.safetensors", "preprocessor_config.json"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "ast-fusion" and config["fusion_layers"] == [1, 2]
    assert config["auto_map"] == {
        "AutoConfig": "configuration_ast.AstFusionConfig",
        "AutoModel": "modeling_ast.AstFusionModel",
        "AutoModelForAudioClassification": "modeling_ast.AstFusionForAudioClassification",
    }
    assert config["problem_type"] == "multi_label_classification" and len(config["id2label"]) == 527
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    assert preprocessor["auto_map"] == {"AutoFeatureExtractor": "feature_extraction_ast.AstFusionFeatureExtractor"}
    assert preprocessor["pad_to_max_length"] is False and "mel_filters" not in preprocessor


def test_clean_process_loads_and_matches(folder, tmp_path):
    script = f"""
    import json, numpy as np, torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification, pipeline
    folder = {str(folder)!r}
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (8000, 40000)]
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
        "pooler": out.pooler_output.tolist(), "frames": out.frame_mask.sum(dim=1).tolist(),
        "hidden": [list(h.shape[1:]) for h in out.hidden_states], "pooled": len(out.pooled_hidden_states),
        "logits": logits.tolist(), "top": top, "batch": batch,
    }}))
    """
    result = run_clean_process(script, tmp_path)
    assert result["classes"] == ["AstFusionConfig", "AstFusionFeatureExtractor", "AstFusionModel",
                                 "AstFusionForAudioClassification"]
    assert result["modules"] == ["transformers_modules"]
    assert result["frames"] == [4, 24]  # 0.5 s: 48 fbank frames -> 4 patches; 2.5 s: 248 -> 24
    assert result["hidden"] == [[24, 12 * 128]] * 3 and result["pooled"] == 3

    features = AstFusionFeatureExtractor.from_pretrained(folder)(clips(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        pooler = AstFusionModel.from_pretrained(folder).eval()(**features).pooler_output
        logits = AstFusionForAudioClassification.from_pretrained(folder).eval()(**features).logits
    assert pooler.shape == (2, 256)
    np.testing.assert_allclose(result["pooler"], pooler.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result["logits"], logits.numpy(), rtol=1e-5, atol=1e-5)

    probabilities = torch.sigmoid(logits[0])
    order = torch.argsort(probabilities, descending=True)[:3].tolist()
    id2label = AstFusionForAudioClassification.from_pretrained(folder).config.id2label
    assert [entry["label"] for entry in result["top"]] == [id2label[i] for i in order]
    np.testing.assert_allclose([entry["score"] for entry in result["top"]], probabilities[order].numpy(), rtol=1e-5)
    assert [entry["label"] for entry in result["batch"][0]] == [entry["label"] for entry in result["top"]]
    np.testing.assert_allclose([e["score"] for e in result["batch"][0]], [e["score"] for e in result["top"]], rtol=1e-5)
