"""Whole clips at their own length (0.5 s, 1 s, 4 s, 30 s) and mixed-length batches.

A clip of N samples gives 1 + (N - 400) // 160 fbank frames and (frames - 16) // 10 + 1 output frames
(one per 100 ms). A padded batch must give every clip its single-clip result: equal-length clips run
together, so the only possible differences are batched-vs-single float32 rounding (tolerance 1e-5;
measured 0 here: bit-identical).
"""

import numpy as np
import pytest
import torch
from ast_reference import TINY, input_frames, random_ast_head, time_patches

from modeling_fusion import AstFusionConfig, AstFusionFeatureExtractor, AstFusionModel

SECONDS = [0.5, 1.0, 4.0, 30.0]


@pytest.fixture(scope="module")
def model():
    model = AstFusionModel(AstFusionConfig(ast_config=TINY, fusion_layers=[2, 3])).eval()
    model.ast.load_state_dict(random_ast_head(seed=3).audio_spectrogram_transformer.state_dict(), strict=True)
    return model


def clip(seconds, seed):
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def test_attention_runs_through_sdpa(model):
    # memory-efficient attention: a 30 s clip has 3590 tokens, eager would hold [heads, 3590, 3590] per block
    assert model.ast.config._attn_implementation == "sdpa"


def test_mixed_lengths_match_single_clips(model):
    clips = [clip(seconds, seed) for seed, seconds in enumerate(SECONDS)] + [clip(1.0, 9)]
    extractor = AstFusionFeatureExtractor()
    batch = extractor(clips, sampling_rate=16000, return_tensors="pt")
    frames = [input_frames(len(c)) for c in clips]
    assert batch["input_values"].shape == (5, max(frames), 128)
    assert batch["attention_mask"].sum(dim=1).tolist() == frames
    with torch.no_grad():
        together = model(**batch, output_hidden_states=True)
    patches = [time_patches(f) for f in frames]
    assert patches == [4, 9, 39, 299, 9]
    assert together.frame_mask.sum(dim=1).tolist() == patches
    for row, (audio, count) in enumerate(zip(clips, patches)):
        with torch.no_grad():
            alone = model(**extractor(audio, sampling_rate=16000, return_tensors="pt"), output_hidden_states=True)
        assert alone.frame_mask is None and alone.last_hidden_state.shape[1] == count
        torch.testing.assert_close(together.pooler_output[row], alone.pooler_output[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(together.last_hidden_state[row, :count], alone.last_hidden_state[0], atol=1e-5,
                                   rtol=0)
        assert not together.last_hidden_state[row, count:].any()
        for layer in (0, 1, 3):
            torch.testing.assert_close(together.hidden_states[layer][row, :count], alone.hidden_states[layer][0],
                                       atol=1e-5, rtol=0)
            torch.testing.assert_close(together.pooled_hidden_states[layer][row], alone.pooled_hidden_states[layer][0],
                                       atol=1e-5, rtol=0)


def test_padding_values_do_not_leak(model):
    extractor = AstFusionFeatureExtractor()
    batch = extractor([clip(1.0, 0), clip(4.0, 1)], sampling_rate=16000, return_tensors="pt")
    poisoned = batch["input_values"].clone()
    poisoned[0, input_frames(16000):] = 1e4
    with torch.no_grad():
        clean = model(**batch).pooler_output
        dirty = model(input_values=poisoned, attention_mask=batch["attention_mask"]).pooler_output
    assert torch.equal(clean, dirty)
