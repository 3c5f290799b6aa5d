"""A converted VGGish folder works where this package is not installed: AutoConfig, AutoFeatureExtractor,
AutoModel (8192-d fusion and the 128-d original embedding) and AutoModelForAudioClassification (a
fresh probe; VGGish has no released classifier, so there is no audio-classification pipeline test)."""

import json

import numpy as np
import pytest
import torch
from vggish_reference import random_torchvggish, torchvggish_checkpoint

from conftest import run_clean_process
from modeling_fusion import inference
from modeling_fusion.convert import main as convert_main
from modeling_fusion.feature_extraction_vggish import VGGishFeatureExtractor
from modeling_fusion.modeling_vggish import VGGishFusionModel

REMOTE_FILES = {"configuration_vggish.py", "modeling_vggish.py", "feature_extraction_vggish.py", "fusion.py",
                "audio_input.py", "classification.py", "pipeline_audio_embedding.py"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    source = tmp_path_factory.mktemp("ckpt")
    torch.save(torchvggish_checkpoint(random_torchvggish(seed=31), "tcvrick"), source / "pytorch_vggish.pth")
    rng = np.random.default_rng(0)
    pca = {"pca_eigen_vectors": np.linalg.qr(rng.standard_normal((128, 128)))[0] * 150.0,
           "pca_means": rng.normal(0, 0.01, 128)}
    np.savez(source / "vggish_pca_params.npz", **pca)
    output = tmp_path_factory.mktemp("hub") / "vggish-fusion-10-15"
    convert_main(["vggish", "--checkpoint", str(source / "pytorch_vggish.pth"), "--output", str(output),
                  "--pca", str(source / "vggish_pca_params.npz"), "--layers", "10", "15"])
    return output


def clips():
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (8000, 16000, 46400)]


def test_folder_layout_and_auto_map(folder):
    names = {path.name for path in folder.iterdir()}
    assert REMOTE_FILES | {"config.json", "model.safetensors", "preprocessor_config.json"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_vggish.VGGishFusionConfig",
        "AutoModel": "modeling_vggish.VGGishFusionModel",
        "AutoModelForAudioClassification": "modeling_vggish.VGGishForAudioClassification",
    }
    assert config["fusion_layers"] == [10, 15] and config["postprocess"] is True
    assert config["custom_pipelines"]["audio-embedding"]["impl"] == "pipeline_audio_embedding.AudioEmbeddingPipeline"
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    assert preprocessor["auto_map"] == {"AutoFeatureExtractor": "feature_extraction_vggish.VGGishFeatureExtractor"}
    assert "mel_filters" not in preprocessor and "window" not in preprocessor


def test_clean_process_loads_and_matches(folder, tmp_path):
    script = f"""
    import json, numpy as np, torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification, pipeline
    folder = {str(folder)!r}
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (8000, 16000, 46400)]
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    plain = AutoModel.from_pretrained(folder, trust_remote_code=True, embedding_type="plain").eval()
    head = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True, num_labels=3).eval()
    features = extractor(clips, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        out = model(**features, output_hidden_states=True, output_plain_embedding=True)
        original = plain(**features).pooler_output
        logits = head(**features).logits
        probe_input = head.vggish(**features).pooler_output
    embed = pipeline("audio-embedding", model=folder, trust_remote_code=True)
    piped = embed({{"array": clips[2], "sampling_rate": 16000}}, per_frame=True, per_layer=True)
    print(json.dumps({{
        "classes": [type(config).__name__, type(extractor).__name__, type(model).__name__, type(head).__name__],
        "modules": sorted({{type(model).__module__.split(".")[0], type(head).__module__.split(".")[0]}}),
        "mask": features["attention_mask"].tolist(), "pooler": out.pooler_output.tolist(),
        "plain": out.plain_embedding.tolist(), "original": original.tolist(),
        "hidden": [h.shape[-1] for h in out.hidden_states], "logits": logits.tolist(),
        "probe_ok": bool(torch.allclose(logits, head.classifier(probe_input))),
        "same_backbone": bool(torch.equal(head.vggish.fc[4].weight, model.fc[4].weight)),
        "pipe_embedding": piped["embedding"].tolist(), "pipe_frames": list(piped["frames"].shape),
        "pipe_layers": [piped["layers"][n].tolist() for n in (10, 22)],
    }}))
    """
    result = run_clean_process(script, tmp_path)
    assert result["classes"] == ["VGGishFusionConfig", "VGGishFeatureExtractor", "VGGishFusionModel",
                                 "VGGishForAudioClassification"]
    assert result["modules"] == ["transformers_modules"]
    assert result["mask"] == [[1, 0, 0], [1, 0, 0], [1, 1, 1]]
    assert result["hidden"] == [64, 4096, 4096, 2048, 4096, 4096, 2048, 4096, 4096, 4096, 4096, 2048, 4096, 4096,
                                4096, 4096, 2048, 4096, 4096, 4096, 4096, 128, 128]
    assert np.array(result["logits"]).shape == (3, 3) and result["probe_ok"] and result["same_backbone"]

    features = VGGishFeatureExtractor.from_pretrained(folder)(clips(), sampling_rate=16000, return_tensors="pt")
    model = VGGishFusionModel.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(**features, output_plain_embedding=True, output_hidden_states=True)
    assert out.pooler_output.shape == (3, 8192) and out.plain_embedding.shape == (3, 128)
    np.testing.assert_allclose(result["pooler"], out.pooler_output.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result["plain"], out.plain_embedding.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result["original"], out.plain_embedding.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.mod(result["original"][:2], 1.0) == 0)  # one example each: twice an 8-bit integer
    step = inference.embed(model, VGGishFeatureExtractor.from_pretrained(folder), [clips()[2]], 16000,
                           output_hidden_states=True)  # the pipeline's front end: the one embed step's
    np.testing.assert_allclose(result["pipe_embedding"], step.pooler_output[0].numpy(), rtol=1e-5, atol=1e-6)
    assert result["pipe_frames"] == [18, 8192]
    for got, n in zip(result["pipe_layers"], (10, 22)):
        np.testing.assert_allclose(got, step.pooled_hidden_states[n][0].numpy(), rtol=1e-5, atol=1e-6)


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
