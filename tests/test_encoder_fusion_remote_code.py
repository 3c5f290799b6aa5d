"""`python -m modeling_fusion.convert encoder` folders of every encoder family load where this package is
not installed (Auto classes with the encoder's own feature extractor) and work in the audio-embedding
pipeline, with the values of the package's own classes (tolerance 1e-5: same weights and code, another process)."""

import json

import numpy as np
import pytest
import torch
from encoder_testing import clips, save_tiny_encoder
from transformers import AutoFeatureExtractor, Wav2Vec2FeatureExtractor

from conftest import run_clean_process
from modeling_fusion.convert import main as convert_main
from modeling_fusion.modeling_encoder_fusion import EncoderFusionModel

FAMILIES = ["wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper", "clap", "ast"]
REMOTE_FILES = {"configuration_encoder_fusion.py", "modeling_encoder_fusion.py", "fusion.py", "classification.py",
                "pipeline_audio_embedding.py"}
EXTRACTORS = {"wav2vec2": "Wav2Vec2FeatureExtractor", "hubert": "Wav2Vec2FeatureExtractor",
              "wavlm": "Wav2Vec2FeatureExtractor", "data2vec-audio": "Wav2Vec2FeatureExtractor",
              "whisper": "WhisperFeatureExtractor", "clap": "ClapFeatureExtractor", "ast": "ASTFeatureExtractor"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    for family in FAMILIES:
        source = save_tiny_encoder(family, root / "source" / family)
        convert_main(["encoder", "--checkpoint", str(source), "--output", str(root / family), "--layers", "1", "2"])
    return root


def package_outputs(folder):
    """(pooler of the two test clips as one batch, pooler of clip 0 alone) with the package's classes."""
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    padding = {"padding": True} if isinstance(extractor, Wav2Vec2FeatureExtractor) else {}
    model = EncoderFusionModel.from_pretrained(folder).eval()
    waves = clips(extractor.sampling_rate)
    with torch.no_grad():
        batch = model(**extractor(waves, sampling_rate=extractor.sampling_rate, return_tensors="pt", **padding))
        single = model(**extractor(waves[:1], sampling_rate=extractor.sampling_rate, return_tensors="pt"))
    return batch.pooler_output.numpy(), single.pooler_output[0].numpy()


def test_folder_layout(folders):
    for family in FAMILIES:
        folder = folders / family
        assert REMOTE_FILES | {"config.json", "model.safetensors", "preprocessor_config.json"} <= {
            p.name for p in folder.iterdir()}
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "encoder-fusion" and config["fusion_layers"] == [1, 2]
        assert config["auto_map"]["AutoModel"] == "modeling_encoder_fusion.EncoderFusionModel"
        assert config["encoder_config"]["model_type"] == {"clap": "clap_audio_model", "whisper": "whisper"}.get(
            family, config["encoder_config"]["model_type"])
        assert config["encoder_config"].get("layerdrop", 0.0) == 0.0
        preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
        assert preprocessor["feature_extractor_type"] == EXTRACTORS[family] and "auto_map" not in preprocessor
        if family != "clap" and family != "ast":
            assert preprocessor["return_attention_mask"] is True, "the model needs each clip's real length"


def test_clean_process_auto_classes_and_pipeline(folders, tmp_path):
    script = f"""
    import json, numpy as np, torch
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, pipeline
    root, result = {str(folders)!r}, {{}}
    for family in {FAMILIES!r}:
        folder = f"{{root}}/{{family}}"
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        rng = np.random.default_rng(0)
        rate = extractor.sampling_rate
        waves = [(0.1 * rng.standard_normal(int(s * rate))).astype(np.float32) for s in (0.5, 1.0)]
        padding = {{"padding": True}} if type(extractor).__name__ == "Wav2Vec2FeatureExtractor" else {{}}
        with torch.no_grad():
            out = model(**extractor(waves, sampling_rate=rate, return_tensors="pt", **padding))
        embed = pipeline("audio-embedding", model=folder, trust_remote_code=True)
        piped = embed({{"array": waves[0], "sampling_rate": rate}}, per_layer=True)
        result[family] = {{
            "classes": [type(config).__name__, type(extractor).__name__, type(model).__name__],
            "module": type(model).__module__.split(".")[0], "encoder": type(model.encoder).__name__,
            "pooler": out.pooler_output.tolist(), "pipe": piped["embedding"].tolist(), "layers": len(piped["layers"]),
        }}
    print(json.dumps(result))
    """
    result = run_clean_process(script, tmp_path)
    encoders = {"whisper": "WhisperEncoder", "clap": "ClapAudioModel", "ast": "ASTModel", "wav2vec2": "Wav2Vec2Model",
                "hubert": "HubertModel", "wavlm": "WavLMModel", "data2vec-audio": "Data2VecAudioModel"}
    for family in FAMILIES:
        got = result[family]
        assert got["classes"] == ["EncoderFusionConfig", EXTRACTORS[family], "EncoderFusionModel"]
        assert got["module"] == "transformers_modules" and got["encoder"] == encoders[family]
        batch, single = package_outputs(folders / family)
        np.testing.assert_allclose(got["pooler"], batch, rtol=1e-5, atol=1e-5 * np.abs(batch).max())
        np.testing.assert_allclose(got["pipe"], single, rtol=1e-5, atol=1e-5 * np.abs(single).max())
        assert got["layers"] == (3 if family in ("clap", "whisper") else 4)  # num_layers + 1 per-layer embeddings
        if family not in ("clap", "ast"):  # padding is masked: clip 0 alone gives its batch row
            np.testing.assert_allclose(batch[0], single, rtol=1e-5, atol=1e-5 * np.abs(single).max())
