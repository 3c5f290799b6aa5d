"""ONNX export (`python -m modeling_fusion.export onnx`): every backbone's graph run by onnxruntime (CPU) against
its torch model on real clips (1 s Speech Commands, a short FSDD digit, 4 s UrbanSound8K), and the clear errors.

Random weights: small CNN14 (BatchNorm statistics drawn away from 0 / 1, so activations keep their scale) and
EfficientAT (statistics measured on noise), full-size VGGish, tiny AST, wav2vec2, Whisper and CLAP encoders;
the real weights for EfficientAT mn04 and YAMNet. Tolerance: max |onnxruntime - torch| / max |torch| <= 1e-4
per output (the issue's bound on the clip embedding, also applied to frames and per-layer embeddings): both
run float32, only the kernels differ (measured on full-size models, benchmarks/results/onnx_cpu.md: 4e-7 to
2e-6). float16 graphs: 1e-2 (measured 1e-3 to 5e-3).
"""

import json

import numpy as np
import onnxruntime  # the test extra installs it (with onnx and onnxscript)
import pytest
import torch
from efficientat_testing import random_model as random_efficientat
from encoder_testing import tiny_encoder
from panns_reference import scaled_batch_norms
from yamnet_testing import convert_real as convert_yamnet

from conftest import run_clean_process, shared_path
from modeling_fusion import (AstFusionConfig, AstFusionModel, Cnn14FeatureExtractor, Cnn14FusionConfig,
                             Cnn14FusionModel, EfficientATFeatureExtractor, EncoderFusionConfig, EncoderFusionModel,
                             VGGishFeatureExtractor, VGGishFusionConfig, VGGishFusionModel)
from modeling_fusion.audio_input import load_audio
from modeling_fusion.convert.save_folder import save_model_folder
from modeling_fusion.export import main as export_main
from modeling_fusion.hub.publish import main as hub_main
from modeling_fusion.export.onnx import export_onnx, load_folder, relative_difference
from modeling_fusion.feature_extraction_ast import AstFusionFeatureExtractor


RTOL = 1e-4
CLIPS = {  # real clips of three lengths
    "spcv2_1s": ("speech_commands_v2_test", "audio", "down", "022cd682_nohash_0.flac"),
    "fsdd_short": ("fsdd", "audio", "7_jackson_3.flac"),
    "us8k_4s": ("urbansound8k_3folds", "audio", "fold1", "101415-3-0-2.ogg"),
}
SMALL_CNN14 = dict(block_channels=(8, 16, 16, 32, 32, 64))
CNN14_32K = dict(sampling_rate=32000, n_fft=1024, hop_length=320, f_max=14000.0)
TINY_AST = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)


def real_clip(name, rate):
    return load_audio(str(shared_path("data", *CLIPS[name])), rate)


def build(name, folder):
    """A model folder for backbone `name` (random weights unless noted)."""
    torch.manual_seed(0)
    if name in ("cnn14-16k", "cnn14-32k"):
        model = scaled_batch_norms(Cnn14FusionModel(Cnn14FusionConfig(**SMALL_CNN14)), seed=1)
        extractor = Cnn14FeatureExtractor(**(CNN14_32K if name == "cnn14-32k" else {}))
    elif name == "efficientat":
        model, extractor = random_efficientat(width_mult=0.1), EfficientATFeatureExtractor()
    elif name == "vggish":
        model, extractor = VGGishFusionModel(VGGishFusionConfig()).eval(), VGGishFeatureExtractor()
    elif name == "ast":
        model = AstFusionModel(AstFusionConfig(ast_config=TINY_AST, fusion_layers=[2, 3])).eval()
        extractor = AstFusionFeatureExtractor()
    elif name in ("wav2vec2", "whisper", "clap"):
        encoder, _, extractor = tiny_encoder(name)
        layers = [1, 3] if name == "wav2vec2" else [1, 2]
        model = EncoderFusionModel(EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=layers),
                                   encoder=encoder).eval()
    elif name == "yamnet":  # the real weights
        return convert_yamnet(folder)
    else:
        raise ValueError(name)
    return save_model_folder(model, extractor, folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    cache = {}

    def folder(name):
        if name not in cache:
            cache[name] = build(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return folder


def check_graph(output_dir, model_dir, audio):
    """Run the exported graph on one clip's features and compare every output with the torch model."""
    model, extractor = load_folder(model_dir)
    manifest = json.loads((output_dir / "manifest.json").read_text())
    name = manifest["input"]["name"]
    features = extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors="np")[name]
    session = onnxruntime.InferenceSession(str(output_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {name: features})))
    with torch.no_grad():
        expected = model(**{name: torch.from_numpy(features)}, output_hidden_states=True)
    assert relative_difference(outputs["pooler_output"], expected.pooler_output) <= RTOL
    assert relative_difference(outputs["last_hidden_state"], expected.last_hidden_state) <= RTOL
    assert outputs["frame_mask"].dtype == bool and outputs["frame_mask"].all()
    assert outputs["frame_mask"].shape == expected.last_hidden_state.shape[:2]
    for layer, pooled in enumerate(expected.pooled_hidden_states):
        assert relative_difference(outputs[f"pooled_layer_{layer}"], pooled) <= RTOL, layer
    return outputs


@pytest.mark.parametrize("name", ["cnn14-16k", "cnn14-32k", "efficientat", "vggish", "wav2vec2"])
def test_dynamic_length_graph_matches_torch_on_real_clips(name, folders, tmp_path):
    folder = folders(name)
    manifest = export_onnx(folder, tmp_path, dynamic_length=True)
    assert manifest["check"]["pooler_output_max_relative"] <= RTOL
    assert manifest["check"]["second_pooler_output_max_relative"] <= RTOL
    rate = load_folder(folder)[1].sampling_rate
    for clip in CLIPS:
        check_graph(tmp_path, folder, real_clip(clip, rate))


@pytest.mark.parametrize("name", ["ast", "yamnet"])
def test_fixed_length_graphs_match_torch_on_real_clips_fitted_to_their_length(name, folders, tmp_path):
    """AST and YAMNet graphs hold one length: each real clip is cut or zero-padded to it."""
    folder = folders(name)
    seconds = 2.0
    manifest = export_onnx(folder, tmp_path, seconds=seconds)
    assert manifest["input"]["shape"][0] == "batch" and manifest["input"]["length"].startswith("fixed")
    rate = load_folder(folder)[1].sampling_rate
    for clip in CLIPS:
        audio = real_clip(clip, rate)
        fitted = np.pad(audio, (0, max(0, round(seconds * rate) - len(audio))))[: round(seconds * rate)]
        check_graph(tmp_path, folder, fitted)


@pytest.mark.parametrize("name", ["whisper", "clap"])
def test_fixed_input_encoders_match_torch_on_real_clips(name, folders, tmp_path):
    """Whisper's extractor pads every clip to 30 s and CLAP's fits it into 10 s: one graph takes them all."""
    folder = folders(name)
    manifest = export_onnx(folder, tmp_path)
    assert manifest["input"]["name"] == "input_features" and manifest["input"]["shape"][0] == "batch"
    rate = load_folder(folder)[1].sampling_rate
    for clip in CLIPS:
        check_graph(tmp_path, folder, real_clip(clip, rate))


@pytest.mark.parametrize("name", ["ast", "yamnet"])
def test_dynamic_length_is_refused_naming_why(name, folders, tmp_path):
    with pytest.raises(ValueError, match="--dynamic-length is not possible: .*(position embeddings|SAME)"):
        export_onnx(folders(name), tmp_path, dynamic_length=True)


def test_real_efficientat_through_the_command_line(tmp_path):
    """The published mn04 variant built from the real checkpoint, exported by the CLI, on real clips; the
    folder's feature extractor loads from the output folder alone (remote code copied)."""
    model_dir = tmp_path / "mn04"
    hub_main(["build", "efficientat-mn04-as-fusion-12-14", "--checkpoint", str(shared_path("weights", "efficientat_mn04_as.pt")),
         "--labels", str(shared_path("weights", "audioset_labels.csv")), "--output", str(model_dir)])
    output = tmp_path / "onnx"
    export_main(["onnx", str(model_dir), str(output), "--dynamic-length"])
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["input"]["shape"] == ["batch", "frames", 128]
    assert manifest["outputs"]["pooler_output"]["shape"] == ["batch", 640]
    assert len(manifest["outputs"]) == 3 + 18  # pooled_layer_0 (the log-mel) ... pooled_layer_17
    for clip in CLIPS:
        check_graph(output, model_dir, real_clip(clip, 32000))
    # the documented call, where this package is not installed: the extractor's remote code was copied
    script = f"""
    import json, numpy as np, onnxruntime, soundfile as sf
    from transformers import AutoFeatureExtractor
    extractor = AutoFeatureExtractor.from_pretrained({str(output)!r}, trust_remote_code=True)
    audio, rate = sf.read({str(shared_path("data", *CLIPS["spcv2_1s"]))!r}, dtype="float32")
    from scipy.signal import resample_poly
    audio = resample_poly(audio, extractor.sampling_rate, rate).astype(np.float32)
    features = extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors="np")
    session = onnxruntime.InferenceSession({str(output / "model.onnx")!r})
    pooler = session.run(["pooler_output"], {{"input_values": features["input_values"]}})[0]
    print(json.dumps({{"module": type(extractor).__module__, "pooler": pooler.tolist(),
                       "features": features["input_values"].tolist()}}))
    """
    result = run_clean_process(script, tmp_path)
    assert result["module"].startswith("transformers_modules")
    model, _ = load_folder(model_dir)
    with torch.no_grad():
        expected = model(torch.tensor(result["features"])).pooler_output
    assert relative_difference(result["pooler"], expected) <= RTOL


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit, match="is not a model folder"):
        export_main(["onnx", str(tmp_path / "nowhere"), str(tmp_path / "out")])


def test_fp16_graph_stays_finite_and_close_on_a_real_clip(folders, tmp_path):
    """float16 weights and activations (float32 input and outputs): CNN14's graph starts from the log-mel in dB
    (within +-100), so no activation nears 65504 here; the embedding stays within float16 rounding (1e-2)."""
    folder = folders("cnn14-16k")
    manifest = export_onnx(folder, tmp_path, fp16=True, dynamic_length=True)
    assert manifest["dtype"] == "float16" and manifest["check"]["fp16_peak_activation"]["headroom"] > 10
    outputs = check_graph_fp16(tmp_path, folder, real_clip("us8k_4s", 16000))
    assert all(np.isfinite(value).all() for value in outputs.values())


def check_graph_fp16(output_dir, model_dir, audio, rtol=1e-2):
    model, extractor = load_folder(model_dir)
    features = extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors="np")["input_values"]
    session = onnxruntime.InferenceSession(str(output_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input_values": features})))
    with torch.no_grad():
        expected = model(torch.from_numpy(features)).pooler_output
    assert outputs["pooler_output"].dtype == np.float32
    assert 0 < relative_difference(outputs["pooler_output"], expected) <= rtol  # float16 rounding shows, within bounds
    return outputs


def test_dynamic_length_refusal_through_the_command_line(folders, tmp_path):
    with pytest.raises(SystemExit, match="yamnet-fusion: --dynamic-length is not possible: YAMNet's TF 'SAME' padding"):
        export_main(["onnx", str(folders("yamnet")), str(tmp_path), "--dynamic-length"])
