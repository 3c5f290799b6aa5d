"""HEAR 2021 API (modeling_fusion.harness.hear) and the X-ARES encoder (modeling_fusion/harness/xares.py), checked the way
hear-validator (v2021.0.6, `hearvalidator/validate.py`) and X-ARES (`xares.utils.attr_from_py_path`,
`xares.audio_encoder_checker.check_audio_encoder`) check them; neither harness installs here (TensorFlow,
torchaudio), so their checks are replayed."""

import importlib
import importlib.util
import sys

import numpy as np
import pytest
import torch
from chunking_testing import noise, tiny_model
from conftest import REPO
from encoder_testing import tiny_encoder
from transformers import AutoFeatureExtractor, AutoModel

from modeling_fusion import inference
from modeling_fusion.harness import hear
from modeling_fusion.chunking import chunk_length, embed_long_clip
from modeling_fusion.configuration_encoder_fusion import EncoderFusionConfig
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.modeling_encoder_fusion import EncoderFusionModel
from modeling_fusion.convert.save_folder import save_model_folder

HEAR_RATES = (16000, 22050, 32000, 44100, 48000)  # hear-validator 2021.0.6 ACCEPTABLE_SAMPLE_RATE
CASES = {  # backbone (and rate) -> (first timestamp, hop) in ms from the frame arithmetic of chunking.py
    "cnn14-16k": (155.0, 320.0), "cnn14-32k": (155.0, 320.0), "efficientat": (0.0, 320.0),
    "vggish": (87.5, 160.0), "ast": (87.46875, 100.0), "yamnet": (167.5, 320.0),
}


def hear_model(case, **options):
    backbone, _, rate = case.partition("-")
    model, extractor = tiny_model(backbone)
    if rate:
        extractor = Cnn14FeatureExtractor.for_sampling_rate(int(rate[:-1]) * 1000)
    return hear.HearModel(model, extractor, **options)


def validate_timestamps(model, num_audio, length):
    """hear-validator's _check_timestamp_embeddings on a torch model."""
    audio = torch.rand(num_audio, int(length * model.sample_rate)) * 2 - 1
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.dtype == torch.float32
    embeddings, timestamps = embeddings.numpy(), timestamps.numpy()
    assert embeddings.ndim == 3 and timestamps.ndim == 2
    assert embeddings.shape[0] == num_audio and embeddings.shape[:2] == timestamps.shape
    assert embeddings.shape[2] == model.timestamp_embedding_size
    assert timestamps.shape[1] > 1
    diff = np.diff(timestamps)
    assert np.max(np.abs(diff - diff.mean())) <= 1  # "regular intervals", 1 ms
    assert timestamps.min() <= diff.mean()  # the validator warns when the first timestamp is later
    assert timestamps.max() >= 1000 * length - 2 * diff.mean()  # error: no embeddings for the end
    assert timestamps.max() <= 1000 * length  # error: past the end
    return embeddings, timestamps


@pytest.mark.parametrize("case", CASES)
def test_validator_checks(case):
    model = hear_model(case)
    assert model.sample_rate in HEAR_RATES
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    first, hop = CASES[case]
    assert model.frame_hop_ms == hop
    for length in (1.07, 1.98, 4.0):
        _, timestamps = validate_timestamps(model, num_audio=2, length=length)
        np.testing.assert_array_equal(timestamps[1], first + hop * np.arange(timestamps.shape[1]))
    audio = torch.rand(4, int(2.74 * model.sample_rate)) * 2 - 1
    scenes = hear.get_scene_embeddings(audio, model)
    assert scenes.dtype == torch.float32 and tuple(scenes.shape) == (4, model.scene_embedding_size)
    # the scene embedding is the model's pooler_output on the same audio, clip by clip
    extractor = model.feature_extractor
    for row in (0, 3):
        expected = inference.embed(model.model, extractor, [audio[row].numpy()], model.sample_rate).pooler_output[0]
        torch.testing.assert_close(scenes[row], expected, rtol=1e-6, atol=1e-6)  # batch of 4 vs one clip


# encoder fusion (transformers encoders) -> (first timestamp, hop) in ms: wav2vec2's tiny conv front end (kernels
# 10, 4; strides 5, 4: 25-sample field, 20-sample hop), Whisper's 20 ms frames, AST's 100 ms patches
ENCODER_CASES = {"wav2vec2": (0.75, 1.25), "whisper": (0.0, 20.0), "ast": (87.46875, 100.0)}


@pytest.mark.parametrize("family", ENCODER_CASES)
def test_encoder_fusion_passes_the_validator_checks(family):
    torch.manual_seed(0)
    encoder, _, extractor = tiny_encoder(family)
    config = EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=[1, 2])
    model = hear.HearModel(EncoderFusionModel(config, encoder=encoder.eval()), extractor)
    first, hop = ENCODER_CASES[family]
    assert model.frame_hop_ms == hop
    # the tiny AST's extractor cuts clips to 128 frames (a 12-patch window, 1.2 s): longer clips run in windows
    assert chunk_length(model.model, extractor, 40 * model.sample_rate) == (1.2 if family == "ast" else 30.0)
    for length in (1.07, 1.98, 4.0):
        _, timestamps = validate_timestamps(model, num_audio=2, length=length)
        np.testing.assert_allclose(timestamps[1], first + hop * np.arange(timestamps.shape[1]), rtol=0, atol=1e-9)
    audio = torch.rand(4, int(2.74 * model.sample_rate)) * 2 - 1
    scenes = hear.get_scene_embeddings(audio, model)
    expected = embed_long_clip(model.model, extractor, audio[3], model.chunk_length_s).pooler_output[0]
    torch.testing.assert_close(scenes[3], expected, rtol=1e-6, atol=1e-6)  # batch of 4 vs one clip


def test_long_clips_run_in_chunks_with_regular_timestamps():
    model = hear_model("cnn14-16k", chunk_length_s=4.0, memory_budget_gib=1e-6)  # no whole-clip pass fits
    audio = torch.from_numpy(np.stack([noise(13.3, 16000, seed=s) for s in (0, 1)]))
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    reference = embed_long_clip(model.model, model.feature_extractor, audio[1], chunk_length_s=None)
    torch.testing.assert_close(embeddings[1], reference.last_hidden_state[0], rtol=1e-5, atol=1e-6)
    assert timestamps.shape == embeddings.shape[:2] and timestamps.max() <= 13300
    scenes = hear.get_scene_embeddings(audio, model)
    torch.testing.assert_close(scenes[1], reference.pooler_output[0], rtol=1e-5, atol=1e-6)
    # no drift over 40 minutes: timestamps are first + j * hop computed in float64
    times = model.timestamps_ms(7500)
    assert times[-1] == 155.0 + 7499 * 320.0 and np.ptp(np.diff(times)) < 1e-6


def test_vggish_frames_past_the_end_of_a_short_clip_are_dropped():
    model = hear_model("vggish")
    embeddings, timestamps = hear.get_timestamp_embeddings(torch.rand(1, 8000) * 2 - 1, model)  # 0.5 s
    # fused frames every 160 ms from 87.5 ms; the next, at 567.5 ms, lies past the 500 ms clip
    np.testing.assert_allclose(timestamps.numpy(), [[87.5, 247.5, 407.5]])
    assert embeddings.shape[1] == 3


@pytest.fixture(scope="module")
def cnn14_folder(tmp_path_factory):
    model, extractor = tiny_model("cnn14")
    return save_model_folder(model, extractor, tmp_path_factory.mktemp("hear") / "cnn14")


@pytest.fixture(scope="module")
def yamnet_folder(tmp_path_factory):
    model, extractor = tiny_model("yamnet")
    return save_model_folder(model, extractor, tmp_path_factory.mktemp("hear") / "yamnet")


def test_load_model_from_a_folder_equals_automodel(cnn14_folder):
    model = hear.load_model(str(cnn14_folder))
    audio = torch.rand(3, int(2.74 * 16000)) * 2 - 1
    auto = AutoModel.from_pretrained(cnn14_folder, trust_remote_code=True).eval()
    extractor = AutoFeatureExtractor.from_pretrained(cnn14_folder, trust_remote_code=True)
    expected = inference.embed(auto, extractor, list(audio.numpy()), 16000).pooler_output  # the one embed step
    assert torch.equal(hear.get_scene_embeddings(audio, model), expected)
    with pytest.raises(ValueError, match="unknown option"):
        hear.load_model(str(cnn14_folder), hop_ms=50)


def test_default_model_missing_says_how_to_build_it(monkeypatch):
    monkeypatch.chdir("/")
    with pytest.raises(ValueError, match="modeling_fusion.hub build efficientat-mn04-as-fusion-12-14"):
        hear.load_model()


# backbone -> (output_dim, frames of 50000 samples): CNN14 1 + 50000 // 160 = 313 frames -> 9 of 32; YAMNet 6
# patches -> 336 frames -> 11 of 32, of which 10 are centred within the 3.125 s
XARES_CASES = {"cnn14": (80, 9), "yamnet": (4096, 10)}


@pytest.mark.parametrize("backbone", XARES_CASES)
def test_xares_loads_the_encoder_file_as_xares_does(backbone, request, monkeypatch):
    monkeypatch.setenv("FUSION_XARES_MODEL", str(request.getfixturevalue(f"{backbone}_folder")))
    output_dim, num_frames = XARES_CASES[backbone]
    path = "modeling_fusion/harness/xares.py"  # xares.utils.attr_from_py_path: path -> module name, one *Encoder attribute
    sys.modules.pop("modeling_fusion.harness.xares", None)
    module = importlib.import_module(path.replace("/", ".")[:-3])
    names = [name for name in dir(module) if name.endswith("Encoder")]
    assert names == ["FusionEncoder"]
    encoder = getattr(module, names[0])()
    # xares.audio_encoder_checker.check_audio_encoder
    assert type(encoder).__name__.endswith("Encoder") and isinstance(encoder, torch.nn.Module)
    assert (encoder.sampling_rate, encoder.output_dim, encoder.hop_size_in_ms) == (16000, output_dim, 320.0)
    audio = torch.randn(2, 50000)
    encoded = encoder(audio)
    assert isinstance(encoded, torch.Tensor) and encoded.ndim == 3
    assert encoded.shape[0] == 2 and encoded.shape[2] == encoder.output_dim
    assert encoded.shape[1] == num_frames
    torch.testing.assert_close(encoded, hear.get_timestamp_embeddings(audio, encoder.fusion)[0])


def test_xares_file_also_loads_by_its_path_outside_the_package(cnn14_folder, monkeypatch, tmp_path):
    """Loaders that import the encoder file by path (spec_from_file_location) get the same encoder."""
    monkeypatch.setenv("FUSION_XARES_MODEL", str(cnn14_folder))
    copy = tmp_path / "my_xares_encoder.py"
    copy.write_text((REPO / "modeling_fusion" / "harness" / "xares.py").read_text())
    spec = importlib.util.spec_from_file_location("my_xares_encoder", copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    encoder = module.FusionEncoder()
    audio = torch.randn(1, 32000)
    torch.testing.assert_close(encoder(audio), hear.get_timestamp_embeddings(audio, encoder.fusion)[0])


def test_hear_timestamps_are_float32_and_a_missing_folder_is_named(tmp_path):
    model = hear_model("efficientat")
    _, timestamps = hear.get_timestamp_embeddings(torch.rand(2, 32000) * 2 - 1, model)
    assert timestamps.dtype == torch.float32
    with pytest.raises(ValueError, match="does not exist"):
        hear.load_model(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="got no sounds"):
        hear.get_scene_embeddings(torch.zeros(0, 32000), model)
