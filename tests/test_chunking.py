"""Bounded-memory chunked forward (modeling_fusion.chunking) against whole-clip passes."""

import dataclasses

import numpy as np
import pytest
import torch
from chunking_testing import noise, tiny_model

from modeling_fusion import chunking, inference
from modeling_fusion.chunking import chunk_plan, embed_long_clip

BACKBONES = ("cnn14", "efficientat", "vggish", "ast", "yamnet")
FORCE = 1e-6  # GiB: a budget no whole-clip pass fits, so every clip runs in chunks


def whole(model, extractor, audio, output_hidden_states=False):
    return embed_long_clip(model, extractor, audio, memory_budget_gib=None, output_hidden_states=output_hidden_states)


def relative(a, b):
    return float((a - b).abs().max() / a.abs().max())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_clips_within_the_budget_give_the_embed_step_exactly(backbone):
    """A clip whose whole-clip pass fits the default budget runs whole, whatever chunk_length_s says."""
    model, extractor = tiny_model(backbone)
    audio = noise(3.0, extractor.sampling_rate)
    assert chunking.chunk_length(model, extractor, len(audio), chunk_length_s=1.0) is None
    today = inference.embed(model, extractor, [audio], extractor.sampling_rate, output_hidden_states=True)
    out = embed_long_clip(model, extractor, audio, chunk_length_s=1.0, output_hidden_states=True)
    assert torch.equal(out.pooler_output, today.pooler_output)
    assert torch.equal(out.last_hidden_state, today.last_hidden_state)
    assert all(torch.equal(a, b) for a, b in zip(out.pooled_hidden_states, today.pooled_hidden_states))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_frame_count_formula_matches_the_model(backbone):
    model, extractor = tiny_model(backbone)
    spec = model.config.chunk_spec(extractor)
    rate = extractor.sampling_rate
    for samples in (int(1.07 * rate), int(1.98 * rate), int(2.5 * rate) + 7, 4 * spec.unit_samples):
        frames = whole(model, extractor, noise(samples / rate, rate)).last_hidden_state.shape[1]
        assert spec.num_frames(samples) == frames, samples


# Interior frames: CNN14 and VGGish have no operation spanning the whole input, and the context covers the
# receptive field, so chunked frames equal the whole-clip pass up to float32 rounding of convolutions run on
# tensors of a different size (measured 0 to 1e-7 relative; 1e-5 allows other BLAS kernels).
@pytest.mark.parametrize("backbone, seconds, chunk_s", [
    ("cnn14", 12.0, 2.0),          # several chunks; the end falls inside the last 320 ms unit
    ("cnn14", 10.24, 2.0),         # ends exactly on a unit boundary (32 units of 5120 samples)
    ("cnn14", 7.32, 6.72),         # the last chunk holds a single unit (22 units, 21 per chunk)
    ("vggish", 7.5, 2.0),          # the end falls inside the last example (dropped, as in a whole pass)
])
def test_cnn_chunks_equal_the_whole_clip(backbone, seconds, chunk_s):
    model, extractor = tiny_model(backbone)
    audio = noise(seconds, extractor.sampling_rate, seed=1)
    spec = model.config.chunk_spec(extractor)
    assert len(chunk_plan(len(audio), spec, chunk_s, extractor.sampling_rate)) >= 2
    reference = whole(model, extractor, audio, output_hidden_states=True)
    out = embed_long_clip(model, extractor, audio, chunk_length_s=chunk_s, output_hidden_states=True,
                          memory_budget_gib=FORCE)
    assert out.last_hidden_state.shape == reference.last_hidden_state.shape
    assert relative(reference.last_hidden_state, out.last_hidden_state) < 1e-5
    assert relative(reference.pooler_output, out.pooler_output) < 1e-5
    for a, b in zip(reference.pooled_hidden_states, out.pooled_hidden_states):
        assert relative(a, b) < 1e-5


# YAMNet: TF "SAME" padding shifts layer 13's frame grid with the parity of the patch count E, so chunks start on
# 0.96 s units and run with the clip's length modulo 0.96 s (`length_period`). Fused frames and per-layer clip
# embeddings are then bit-identical to the whole clip (measured 0 and 1.4e-7 relative); "plain" per-patch
# embeddings differ by float rounding of other batch sizes (measured 7e-7). 1e-5 allows other BLAS kernels.
# Without `length_period` a chunk whose patch count has the other parity shifts the grid: frames differ (7e-3).
@pytest.mark.parametrize("embedding_type, seconds", [("fusion", 12.0), ("fusion", 12.3), ("plain", 12.0),
                                                     ("plain", 12.3)])  # E = 24 and 25 patches
def test_yamnet_chunks_equal_the_whole_clip(embedding_type, seconds, monkeypatch):
    model, extractor = tiny_model("yamnet", embedding_type=embedding_type)
    audio = noise(seconds, extractor.sampling_rate, seed=1)
    spec = model.config.chunk_spec(extractor)
    plan = chunk_plan(len(audio), spec, 2.0, extractor.sampling_rate)
    assert len(plan) >= 5 and all(start % 15360 == 0 and (len(audio) - stop) % 15360 == 0 for *_, start, stop in plan)
    reference = whole(model, extractor, audio, output_hidden_states=True)
    out = embed_long_clip(model, extractor, audio, chunk_length_s=2.0, output_hidden_states=True, memory_budget_gib=FORCE)
    assert out.last_hidden_state.shape == reference.last_hidden_state.shape
    assert relative(reference.last_hidden_state, out.last_hidden_state) < 1e-5
    assert relative(reference.pooler_output, out.pooler_output) < 1e-5
    for a, b in zip(reference.pooled_hidden_states, out.pooled_hidden_states):
        assert relative(a, b) < 1e-5
    if embedding_type == "fusion" and seconds == 12.0:
        unpadded = dataclasses.replace(spec, length_period=None)
        monkeypatch.setattr(type(model.config), "chunk_spec", lambda config, fe: unpadded)
        shifted = embed_long_clip(model, extractor, audio, chunk_length_s=2.0, memory_budget_gib=FORCE).last_hidden_state
        assert relative(reference.last_hidden_state, shifted) > 1e-3


def test_context_below_the_receptive_field_changes_cnn14_frames(monkeypatch):
    """The equality above depends on the context: one unit (32 frames) is less than the receptive field."""
    model, extractor = tiny_model("cnn14")
    audio = noise(12.0, extractor.sampling_rate, seed=1)
    reference = whole(model, extractor, audio).last_hidden_state
    narrow = dataclasses.replace(model.config.chunk_spec(extractor), context_units=1)
    monkeypatch.setattr(type(model.config), "chunk_spec", lambda config, fe: narrow)
    chunked = embed_long_clip(model, extractor, audio, chunk_length_s=2.0, memory_budget_gib=FORCE)
    assert relative(reference, chunked.last_hidden_state) > 1e-3


# AST (global attention) is an approximation: windows keep the whole-clip grid; the bound holds for this random
# tiny model on noise (measured 1.3e-2). EfficientAT is exact (tests/test_long_clips_exact.py).
def test_ast_windows_stay_close_to_the_whole_clip():
    model, extractor = tiny_model("ast")
    audio = noise(12.3, extractor.sampling_rate, seed=2)
    reference = whole(model, extractor, audio)
    chunk_s = 12.0  # AST: windows of 10.24 s, 6.1 s kept
    assert len(chunk_plan(len(audio), model.config.chunk_spec(extractor), chunk_s, extractor.sampling_rate)) >= 2
    out = embed_long_clip(model, extractor, audio, chunk_length_s=chunk_s, memory_budget_gib=FORCE)
    assert out.last_hidden_state.shape == reference.last_hidden_state.shape
    assert 0 < relative(reference.last_hidden_state, out.last_hidden_state) < 5e-2
    assert relative(reference.pooler_output, out.pooler_output) < 5e-2


def test_ast_windows_use_the_checkpoint_grid():
    model, extractor = tiny_model("ast")
    spec = model.config.chunk_spec(extractor)
    plan = chunk_plan(60 * 16000 + 123, spec, 30.0, 16000)
    assert {spec.num_frames(stop - start) for _, _, start, stop in plan} == {101}  # no position adaptation
    assert {stop - start for _, _, start, stop in plan[:-1]} == {162800}  # 1016 frames, 10.175 s
    assert all(end - first == 61 for first, end, _, _ in plan[:-1])  # 101 - 2 x 20 context patches


def test_frames_can_be_left_out_and_pooling_is_unchanged():
    model, extractor = tiny_model("cnn14")
    audio = noise(12.0, extractor.sampling_rate, seed=3)
    with_frames = embed_long_clip(model, extractor, audio, chunk_length_s=2.0, memory_budget_gib=FORCE)
    without = embed_long_clip(model, extractor, audio, chunk_length_s=2.0, return_frames=False, memory_budget_gib=FORCE)
    assert without.last_hidden_state is None
    assert torch.equal(with_frames.pooler_output, without.pooler_output)


def test_bad_audio_is_a_clear_error():
    model, extractor = tiny_model("cnn14")
    with pytest.raises(ValueError, match="one mono clip"):
        embed_long_clip(model, extractor, np.zeros((2, 3, 16000), dtype=np.float32))


def test_a_model_without_a_chunking_description_runs_whole(monkeypatch, caplog):
    model, extractor = tiny_model("cnn14")
    audio = noise(6.0, extractor.sampling_rate, seed=8)
    monkeypatch.delattr(type(model.config), "chunk_spec")
    out = embed_long_clip(model, extractor, audio, chunk_length_s=2.0, memory_budget_gib=FORCE)
    assert torch.equal(out.last_hidden_state, whole(model, extractor, audio).last_hidden_state)
    assert "no chunking description" in caplog.text
