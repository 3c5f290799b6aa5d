"""The one embed step (modeling_fusion.inference) and the geometry every backbone's config declares.

Every entry point (the audio-embedding pipeline, fusion-embed, fusion-eval's extraction, HEAR's scene embedding,
the long-clip path on a short clip) calls `inference.embed` / `inference.features` on the same device, so for
one clip they give bit-identical embeddings (torch.equal), on every backbone of this package and on encoder
fusion with a transformers extractor (numpy front end, tensors moved).
"""

import pytest
import soundfile as sf
import torch
from chunking_testing import TINY, noise, tiny_model
from encoder_testing import tiny_encoder

from fusion_eval.extract import compute_features
from modeling_fusion import BACKBONES, inference
from modeling_fusion.chunking import ChunkSpec, embed_long_clip
from modeling_fusion.cli import embed
from modeling_fusion.configuration_encoder_fusion import EncoderFusionConfig
from modeling_fusion.convert import CONVERTERS
from modeling_fusion.harness import hear
from modeling_fusion.modeling_encoder_fusion import EncoderFusionModel
from modeling_fusion.pipeline_audio_embedding import AudioEmbeddingPipeline

CASES = sorted(TINY) + ["encoder-wav2vec2"]


def model_and_extractor(case):
    if case == "encoder-wav2vec2":
        torch.manual_seed(0)
        encoder, _, extractor = tiny_encoder("wav2vec2")
        config = EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=[1, 3])
        return EncoderFusionModel(config, encoder=encoder.eval()).eval(), extractor
    return tiny_model(case)


@pytest.mark.parametrize("case", CASES)
def test_every_entry_point_gives_the_embed_steps_numbers(case, tmp_path):
    model, extractor = model_and_extractor(case)
    rate = extractor.sampling_rate
    clip = noise(1.7, rate, seed=3)
    expected = inference.embed(model, extractor, [clip], rate).pooler_output[0]
    path = tmp_path / "clip.wav"
    sf.write(path, clip, rate, subtype="FLOAT")  # float32 samples, read back as they are
    waves, samples = torch.from_numpy(clip)[None], torch.tensor([len(clip)])  # fusion-eval's collated batch
    with torch.no_grad():
        eval_path = model(**compute_features(extractor, waves, samples, torch.device("cpu"))).pooler_output[0]
    pipe = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)
    got = {
        "pipeline": pipe(clip)["embedding"],
        "pipeline from a file": pipe(str(path))["embedding"],
        "fusion-embed": embed.embed_folder(model, extractor, [path], batch_size=1, per_layer=False,
                                           per_frame=False)[0]["embeddings"],
        "fusion-eval": eval_path,
        "HEAR scene": hear.get_scene_embeddings(torch.from_numpy(clip)[None], hear.HearModel(model, extractor))[0],
        "long-clip path": embed_long_clip(model, extractor, clip).pooler_output[0],
    }
    differ = [name for name, value in got.items() if not torch.equal(torch.as_tensor(value), expected)]
    assert not differ, f"{case}: not the embed step's numbers: {differ}"


def test_the_torch_front_end_is_the_embed_steps_and_close_to_the_numpy_reference():
    """The embed step computes this package's features with `device=`; the numpy reference stays within the
    front ends' parity bounds (tests/test_frontends_torch.py), so the embedding moves little."""
    model, extractor = tiny_model("cnn14")
    clip = noise(2.0, 16000, seed=4)
    step = inference.features(extractor, [clip], 16000, "cpu")
    torch_path = extractor([clip], sampling_rate=16000, return_tensors="pt", device="cpu")
    assert torch.equal(step["input_values"], torch_path["input_values"])
    reference = extractor([clip], sampling_rate=16000, return_tensors="pt")
    assert not torch.equal(step["input_values"], reference["input_values"])  # the other path, really
    torch.testing.assert_close(step["input_values"], reference["input_values"], rtol=0, atol=1e-2)


def test_a_transformers_extractor_runs_on_the_host_and_its_tensors_move():
    """No `device=` for an extractor without `torch_front_end` (wav2vec2's would ignore or refuse it); torch
    clips are turned into numpy first; extractor arguments pass through; the result is the extractor's own."""
    _, _, extractor = tiny_encoder("wav2vec2")
    assert not getattr(extractor, "torch_front_end", False)
    clips = [noise(0.5, 16000, seed=5), noise(0.3, 16000, seed=6)]
    got = inference.features(extractor, [torch.from_numpy(clip) for clip in clips], 16000, "cpu", padding=True)
    own = extractor(clips, sampling_rate=16000, return_tensors="pt", padding=True)
    assert set(got) == set(own) and all(torch.equal(got[key], own[key]) for key in own)


def test_tensor_batches_reach_the_torch_front_end_as_they_are():
    """fusion-eval hands over its collated [B, N] tensor; padded clips as views of it give each clip's features."""
    model, extractor = tiny_model("efficientat")
    clips = [noise(1.0, 32000, seed=7), noise(0.8, 32000, seed=8)]
    waves = torch.zeros(2, 32000)
    for row, clip in enumerate(clips):
        waves[row, : len(clip)] = torch.from_numpy(clip)
    got = compute_features(extractor, waves, torch.tensor([32000, 25600]), torch.device("cpu"))
    expected = inference.features(extractor, clips, 32000, "cpu")
    assert all(torch.equal(got[key], expected[key]) for key in expected)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_declares_its_geometry_and_registry_entries(backbone):
    """Adding a backbone: its config describes its frames (`chunk_spec`) and names its family, its extractor
    has the torch front end, and a converter module of the same name exists."""
    config_class, _, _, extractor_class = BACKBONES[backbone]
    assert "chunk_spec" in vars(config_class), f"{config_class.__name__} has no chunk_spec(feature_extractor)"
    assert isinstance(config_class.family_title, str) and config_class.family_title
    assert extractor_class.torch_front_end is True
    spec = config_class().chunk_spec(extractor_class())
    assert isinstance(spec, ChunkSpec) and spec.frame_hop > 0 and spec.num_frames(10 * spec.unit_samples) > 0
    assert backbone in CONVERTERS


def test_encoder_fusion_declares_its_geometry_and_converters_are_discovered():
    assert "chunk_spec" in vars(EncoderFusionConfig)
    assert set(CONVERTERS) == set(BACKBONES) | {"encoder"}  # helpers (checkpoints, save_folder, ...) are not


@pytest.mark.parametrize("backbone", ["cnn14", "yamnet"])
def test_exact_backbones_context_covers_the_receptive_field(backbone):
    """The context dropped on each side of a chunk covers half the receptive field plus one fused frame (input
    frames): what makes chunked CNN14 and YAMNet frames equal the whole clip's (tests/test_chunking.py)."""
    config_class, _, _, extractor_class = BACKBONES[backbone]
    config, extractor = config_class(), extractor_class()
    spec = config.chunk_spec(extractor)
    context_frames = spec.context_units * spec.unit_samples // extractor.hop_length
    assert config.receptive_field == {"cnn14": 284, "yamnet": 315}[backbone]
    assert context_frames >= config.receptive_field // 2 + config.time_strides[-1]
    assert spec.exact


def test_fusion_eval_names_models_by_the_configs_family_title():
    assert [BACKBONES[name][0].family_title for name in sorted(BACKBONES)] == [
        "AST", "CNN14", "EfficientAT", "VGGish", "YAMNet"]
    assert not hasattr(EncoderFusionConfig, "family_title")  # named after its folder
