"""Long clips exactly as the whole-clip pass computes them: the memory budget decides whole or chunked, and the
chunked EfficientAT (squeeze-excitation gates fixed to their whole-clip values, clip_gates.py) and YAMNet equal
the whole clip with the real weights on real audio, through every entry point."""

import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from chunking_testing import noise, tiny_model
from conftest import REPO, shared_path
from yamnet_testing import convert_real

from modeling_fusion import chunking
from modeling_fusion.chunking import chunk_length, chunk_plan, embed_long_clip
from modeling_fusion.cli.embed import main as embed_main
from modeling_fusion.cli.model_source import load_pretrained
from modeling_fusion.clip_gates import gate_modules
from modeling_fusion.convert import main as convert_main
from modeling_fusion.harness import hear
from modeling_fusion.pipeline_audio_embedding import AudioEmbeddingPipeline

FORCE = 1e-6  # GiB: no whole-clip pass fits, every clip runs in chunks


def relative(a, b):
    return float((a - b).abs().max() / a.abs().max())


def test_a_clip_within_the_budget_runs_whole_and_a_longer_one_in_chunks_the_budget_holds():
    model, extractor = tiny_model("cnn14")  # the config states 4.8 MiB per second of audio
    rate, per_second = extractor.sampling_rate, model.config.whole_clip_bytes_per_second
    budget = 60 * per_second / 2**30  # one minute of audio
    assert chunk_length(model, extractor, 60 * rate, memory_budget_gib=budget) is None
    assert chunk_length(model, extractor, 60 * rate + 160, memory_budget_gib=budget) == pytest.approx(60 - 2 * 8 * 0.32)
    assert chunk_length(model, extractor, 60 * rate + 160, 7.0, memory_budget_gib=budget) == 7.0
    assert chunk_length(model, extractor, 600 * rate, memory_budget_gib=None) is None  # no budget: always whole
    assert chunk_length(model, extractor, 600 * rate, 0, memory_budget_gib=budget) is None  # 0: never chunk


def test_tiny_efficientat_chunks_equal_the_whole_clip_in_every_layer_and_gates_are_reset():
    """Random tiny model: fixed whole-clip gates give frames and every layer's clip embedding within float
    rounding (measured 7.6e-8 / 1.5e-7); each chunk's own gates (the old scheme) differ by 1.7e-5."""
    model, extractor = tiny_model("efficientat")
    audio = noise(12.3, extractor.sampling_rate, seed=2)
    assert len(chunk_plan(len(audio), model.config.chunk_spec(extractor), 2.0, extractor.sampling_rate)) >= 5
    whole = embed_long_clip(model, extractor, audio, memory_budget_gib=None, output_hidden_states=True)
    out = embed_long_clip(model, extractor, audio, 2.0, output_hidden_states=True, memory_budget_gib=FORCE)
    assert out.last_hidden_state.shape == whole.last_hidden_state.shape
    assert relative(whole.last_hidden_state, out.last_hidden_state) < 1e-5
    assert relative(whole.pooler_output, out.pooler_output) < 1e-5
    for a, b in zip(whole.pooled_hidden_states, out.pooled_hidden_states):
        assert relative(a, b) < 1e-5
    assert len(gate_modules(model)) == 8 and all(m.fixed_gate is None for m in gate_modules(model))


def test_without_fixed_gates_the_chunks_differ(monkeypatch):
    """The equality above comes from the fixed gates: with each chunk's own gates the frames move."""
    model, extractor = tiny_model("efficientat")
    audio = noise(12.3, extractor.sampling_rate, seed=2)
    whole = embed_long_clip(model, extractor, audio, memory_budget_gib=None)
    monkeypatch.setattr(chunking, "gate_modules", lambda model: [])
    out = embed_long_clip(model, extractor, audio, 2.0, memory_budget_gib=FORCE)
    assert relative(whole.last_hidden_state, out.last_hidden_state) > 1e-5


@pytest.fixture(scope="module")
def real_models(tmp_path_factory):
    """(model, extractor) of the real mn04 (fusion 12 + 14) and YAMNet (6 + 14), converted from ../shared/weights."""
    root = tmp_path_factory.mktemp("real")
    convert_main(["efficientat", "--checkpoint", str(shared_path("weights", "efficientat_mn04_as.pt")),
                  "--output", str(root / "mn04"), "--labels", str(shared_path("weights", "audioset_labels.csv")),
                  "--layers", "12", "14"])
    convert_real(root / "yamnet")
    return {name: (root / name, *load_pretrained(str(root / name), "")) for name in ("mn04", "yamnet")}


def real_audio(seconds, rate):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_long_clips import joined_audio

    return joined_audio(shared_path("data", "urbansound8k_3folds"), seconds, rate)


@pytest.mark.parametrize("name", ["mn04", "yamnet"])
def test_real_weights_every_entry_point_equals_the_whole_clip(name, real_models, tmp_path):
    """60 s of real UrbanSound8K audio, a budget of 0.05 GiB (whole passes of 22-26 s; chunks of ~16 s for mn04,
    ~22 s for YAMNet): the embed_long_clip, pipeline, HEAR and fusion-embed clip embeddings and frames equal the
    whole-clip pass within float rounding (measured 3.7e-7 for mn04 on 180 s; before, mn04 with each chunk's
    own squeeze-excitation average: clip cosine 0.971, 62% max relative). Bounds: 1e-4 relative, cosine 0.9999."""
    folder, model, extractor = real_models[name]
    rate, budget = extractor.sampling_rate, 0.05
    audio = real_audio(60, rate)
    assert chunk_length(model, extractor, len(audio), memory_budget_gib=budget) is not None
    whole = embed_long_clip(model, extractor, audio, memory_budget_gib=None)

    def check(embedding, frames=None):
        embedding = torch.as_tensor(np.asarray(embedding)).reshape(1, -1)
        assert relative(whole.pooler_output, embedding) <= 1e-4
        assert F.cosine_similarity(whole.pooler_output, embedding).item() >= 0.9999
        if frames is not None:
            frames = torch.as_tensor(np.asarray(frames))
            assert frames.shape == whole.last_hidden_state[0].shape
            assert relative(whole.last_hidden_state[0], frames) <= 1e-4
            assert F.cosine_similarity(whole.last_hidden_state[0], frames, dim=-1).min().item() >= 0.9999

    chunked = embed_long_clip(model, extractor, audio, memory_budget_gib=budget)
    check(chunked.pooler_output, chunked.last_hidden_state[0])
    pipe = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)
    result = pipe(audio, per_frame=True, memory_budget_gib=budget)
    check(result["embedding"], result["frames"])
    hear_model = hear.HearModel(model, extractor, memory_budget_gib=budget)
    clip = torch.from_numpy(audio)[None]
    embeddings, timestamps = hear.get_timestamp_embeddings(clip, hear_model)
    # HEAR keeps the frames centred within the audio (YAMNet's padded end outlasts it by up to two)
    inside = int((hear_model.timestamps_ms(whole.last_hidden_state.shape[1]) <= 1000 * len(audio) / rate).sum())
    assert embeddings.shape[1] == inside >= whole.last_hidden_state.shape[1] - 2
    check(hear.get_scene_embeddings(clip, hear_model)[0])
    assert relative(whole.last_hidden_state[0, :inside], embeddings[0]) <= 1e-4
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "long.wav", audio, rate, subtype="FLOAT")
    embed_main([str(folder), str(tmp_path / "audio"), "--output", str(tmp_path / "out.npz"),
                "--memory-budget-gib", str(budget), "--device", "cpu"])
    check(np.load(tmp_path / "out.npz")["embeddings"][0])


def test_hear_vggish_timestamps_reach_the_end_of_the_clip():
    """The trailing partial 0.96 s example is zero-padded: for 4.0 s (4 whole examples, 24 frames to 3767.5 ms
    before) frames run to 3927.5 ms, within one 160 ms hop of the end; they are the model's on the padded clip."""
    model = hear.HearModel(*tiny_model("vggish"))
    audio = torch.rand(2, 64000) * 2 - 1
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    np.testing.assert_allclose(timestamps[0].numpy(), 87.5 + 160.0 * np.arange(25))
    padded = np.pad(audio[1].numpy(), (0, 5 * 15360 + 240 - 64000))  # 5 examples of 15600 samples every 15360
    extractor = model.feature_extractor
    with torch.no_grad():
        frames = model.model(**extractor(padded, sampling_rate=16000, return_tensors="pt")).last_hidden_state[0]
    assert frames.shape[0] == 30
    torch.testing.assert_close(embeddings[1], frames[:25], rtol=1e-6, atol=1e-6)
    # the scene embedding stays the model's own (the partial example dropped, as in the original)
    with torch.no_grad():
        own = model.model(**extractor(audio[1].numpy(), sampling_rate=16000, return_tensors="pt")).pooler_output[0]
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model)[1], own, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("budget", [None, FORCE])  # whole (the original built for the clip's length), windows
def test_ast_pipeline_and_hear_give_the_same_numbers(budget):
    model, extractor = tiny_model("ast")
    audio = noise(14.0, 16000, seed=3)
    options = {} if budget is None else {"memory_budget_gib": budget}
    embedding = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)(audio, **options)["embedding"]
    hear_model = hear.HearModel(model, extractor, memory_budget_gib=budget or chunking.DEFAULT_MEMORY_BUDGET_GIB)
    scene = hear.get_scene_embeddings(torch.from_numpy(audio)[None], hear_model)[0]
    np.testing.assert_allclose(scene.numpy(), embedding, rtol=1e-6, atol=1e-6)
