"""EfficientAT converter: CLI round trip, width inference, remote-code load and pipeline in a clean process."""

import json

import numpy as np
import pytest
import torch
from conftest import run_clean_process, shared_path
from efficientat_testing import noise, random_model

from modeling_fusion import inference
from modeling_fusion.convert.audioset_labels import load_audioset_labels
from modeling_fusion.convert import main as convert_main
from modeling_fusion.convert.efficientat import convert, infer_width_mult, key_mapping
from modeling_fusion.feature_extraction_efficientat import EfficientATFeatureExtractor
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

ATOL = 1e-4  # against the golden reference (see test_efficientat_parity.py)
SAME_CODE_ATOL = 1e-5  # the same weights and code in another process or batch


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    output = tmp_path_factory.mktemp("efficientat") / "mn04-fusion"
    checkpoint = shared_path("weights", "efficientat_mn04_as.pt")
    labels = shared_path("weights", "audioset_labels.csv")
    convert_main(["efficientat", "--checkpoint", str(checkpoint), "--output", str(output), "--labels", str(labels)])
    return output


@pytest.fixture(scope="module")
def golden():
    return np.load(shared_path("golden", "efficientat_mn04_as.npz"))


def test_folder_contents_and_library_load(converted, golden):
    config = json.loads((converted / "config.json").read_text())
    assert config["width_mult"] == 0.4 and config["problem_type"] == "multi_label_classification"
    assert config["id2label"]["74"] == "Dog" and len(config["id2label"]) == 527
    assert config["auto_map"] == {
        "AutoConfig": "configuration_efficientat.EfficientATFusionConfig",
        "AutoModel": "modeling_efficientat.EfficientATFusionModel",
        "AutoModelForAudioClassification": "modeling_efficientat.EfficientATForAudioClassification",
    }
    preprocessor = json.loads((converted / "preprocessor_config.json").read_text())
    assert preprocessor["auto_map"] == {
        "AutoFeatureExtractor": "feature_extraction_efficientat.EfficientATFeatureExtractor"
    }
    assert preprocessor["sampling_rate"] == 32000 and "mel_filters" not in preprocessor and "window" not in preprocessor
    for name in ("configuration_efficientat.py", "modeling_efficientat.py", "feature_extraction_efficientat.py",
                 "fusion.py", "audio_input.py", "classification.py", "model.safetensors", "preprocessor_config.json"):
        assert (converted / name).exists(), name
    model = AutoModelForAudioClassification.from_pretrained(converted).eval()
    extractor = AutoFeatureExtractor.from_pretrained(converted)
    clip = "us8k_dog_bark"
    with torch.no_grad():
        logits = model(**extractor(golden[f"{clip}.waveform"], sampling_rate=32000, return_tensors="pt")).logits
    np.testing.assert_allclose(logits[0], golden[f"{clip}.logits"], rtol=0, atol=ATOL)


def test_clean_process_remote_code_and_pipeline(converted, golden, tmp_path):
    clips = {str(clip): golden[f"{clip}.waveform"] for clip in golden["clip_ids"]}
    forward_clips = ["us8k_siren", "fsdd_6_yweweler_3"]  # a 4 s clip and the shortest (full model outputs)
    batch_clips = ["spc_yes", "fsdd_6_yweweler_3", "fsdd_0_george_0", "sine_1k"]  # mixed lengths, batches of 2
    waves = tmp_path / "waves.npz"
    np.savez(waves, **clips)
    script = f"""
    import json
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification, pipeline

    folder = {str(converted)!r}
    clips = dict(np.load({str(waves)!r}))
    extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
    base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    head = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True).eval()
    classify = pipeline("audio-classification", model=folder, trust_remote_code=True)
    embed = pipeline("audio-embedding", model=folder, trust_remote_code=True)
    objects = (AutoConfig.from_pretrained(folder, trust_remote_code=True), extractor, base, head, classify.model)
    result = {{"classes": [type(o).__module__.split(".")[0] + ":" + type(o).__name__ for o in objects],
               "forward": {{}}}}
    result["top3"] = {{name: classify(wave, top_k=3) for name, wave in clips.items()}}
    batch = {batch_clips!r}
    result["batched"] = dict(zip(batch, classify([clips[n] for n in batch], top_k=3, batch_size=2)))
    for name in {forward_clips!r}:
        inputs = extractor(clips[name], sampling_rate=32000, return_tensors="pt")
        with torch.no_grad():
            embedded = base(**inputs, output_plain_embedding=True)
            logits = head(**inputs).logits
        result["forward"][name] = {{
            "pooler": embedded.pooler_output[0].tolist(), "plain": embedded.plain_embedding[0].tolist(),
            "logits": logits[0].tolist(), "embedding": embed(clips[name])["embedding"].tolist(),
        }}
    print(json.dumps(result))
    """
    result = run_clean_process(script, tmp_path)
    assert result["classes"] == [
        "transformers_modules:EfficientATFusionConfig", "transformers_modules:EfficientATFeatureExtractor", "transformers_modules:EfficientATFusionModel",
        "transformers_modules:EfficientATForAudioClassification",
        "transformers_modules:EfficientATForAudioClassification",
    ]
    names = load_audioset_labels(shared_path("weights", "audioset_labels.csv"))
    for clip in clips:
        reference = golden[f"{clip}.logits"]
        top3 = np.argsort(-reference)[:3]
        assert [p["label"] for p in result["top3"][clip]] == [names[i] for i in top3], clip
        np.testing.assert_allclose([p["score"] for p in result["top3"][clip]], 1 / (1 + np.exp(-reference[top3])),
                                   rtol=0, atol=ATOL, err_msg=clip)
    for clip in batch_clips:
        batched, single = result["batched"][clip], result["top3"][clip]
        assert [p["label"] for p in batched] == [p["label"] for p in single], clip
        np.testing.assert_allclose([p["score"] for p in batched], [p["score"] for p in single],
                                   rtol=0, atol=SAME_CODE_ATOL, err_msg=clip)
    model = AutoModelForAudioClassification.from_pretrained(converted).eval()
    for clip in forward_clips:
        remote = result["forward"][clip]
        np.testing.assert_allclose(remote["logits"], golden[f"{clip}.logits"], rtol=0, atol=ATOL, err_msg=clip)
        np.testing.assert_allclose(remote["plain"], golden[f"{clip}.embedding"], rtol=0, atol=ATOL, err_msg=clip)
        with torch.no_grad():
            ours = model.efficientat(**EfficientATFeatureExtractor()(clips[clip], sampling_rate=32000,
                                                                      return_tensors="pt"))
        np.testing.assert_allclose(remote["pooler"], ours.pooler_output[0], rtol=0, atol=SAME_CODE_ATOL, err_msg=clip)
        step = inference.embed(model.efficientat, EfficientATFeatureExtractor(), [clips[clip]], 32000).pooler_output[0]
        np.testing.assert_allclose(remote["embedding"], step, rtol=0, atol=SAME_CODE_ATOL, err_msg=clip)  # pipeline


def upstream_checkpoint(model):
    """The state dict `model` would have been loaded from, under the original EfficientAT key names."""
    ours = model.state_dict()
    return {upstream: ours[key].clone() for upstream, key in key_mapping(model).items()}


def test_mn10_checkpoint_width_is_inferred_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no label download: LABEL_i names
    model = random_model(width_mult=1.0)
    state_dict = upstream_checkpoint(model)
    assert state_dict["features.1.block.0.0.weight"].shape == (16, 1, 3, 3)  # features.1: no expand conv
    assert state_dict["features.4.block.2.conc_se_layers.0.fc1.weight"].shape == (24, 72)
    assert infer_width_mult(state_dict, 527) == 1.0
    torch.save(state_dict, tmp_path / "mn10_as.pt")
    output = convert(tmp_path / "mn10_as.pt", tmp_path / "mn10", layers=[12, 17])
    loaded = AutoModelForAudioClassification.from_pretrained(output).eval()
    assert loaded.config.width_mult == 1.0 and loaded.config.fusion_layers == [12, 17]
    inputs = EfficientATFeatureExtractor()(noise(20000, 9), sampling_rate=32000, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
        assert logits.std() > 0.05  # not a vanishing random model
        # identical weights; the memory-mapped safetensors can pick other oneDNN kernels, hence not exact
        torch.testing.assert_close(loaded(**inputs).logits, logits, rtol=0, atol=SAME_CODE_ATOL)


def test_converter_rejects_wrong_width_and_foreign_checkpoints(tmp_path):
    model = random_model(width_mult=0.4)
    torch.save(upstream_checkpoint(model), tmp_path / "mn04.pt")
    with pytest.raises(ValueError, match="does not fit width 1.0"):
        convert(tmp_path / "mn04.pt", tmp_path / "out", width_mult=1.0)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an EfficientAT MobileNetV3 checkpoint"):
        convert(tmp_path / "other.pt", tmp_path / "out")
    state_dict = upstream_checkpoint(model)
    state_dict["features.16.0.weight"] = torch.zeros(400, 64, 1, 1)
    with pytest.raises(ValueError, match="matches none of the published widths"):
        infer_width_mult(state_dict, 527)

