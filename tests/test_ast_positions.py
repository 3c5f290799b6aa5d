"""Run-time position-embedding adaptation, as the original AST code adapts its 12 x 101 AudioSet table.

Reference: `ast_reference.adapted_positions` (numpy float64 centre cut / half-pixel bilinear), and an
ASTModel built for the clip's own length (`max_length` = its frames) holding that adapted table, which
is what the original code does at load time. Centre cuts are exact. Interpolated tables agree to 2e-5
(measured 7.3e-6 on entries up to 0.85): PyTorch's bilinear kernel, which the original AST code also
calls, computes source coordinates in float32 (an index near 100 carries ~6e-6 of rounding), the
reference in float64. Model outputs: 5e-5 (measured 0 for centre cuts, 3.8e-6 at 30 s).
"""

import numpy as np
import pytest
import torch
from ast_reference import TINY, adapted_positions, cls_dist, random_ast_head, regroup_frames, time_patches
from transformers import ASTConfig, ASTModel

from modeling_fusion import AstFusionConfig, AstFusionModel
from modeling_fusion.modeling_ast import adapt_position_embeddings


@pytest.fixture(scope="module")
def reference():
    return random_ast_head(seed=2).audio_spectrogram_transformer


@pytest.mark.parametrize("patches", [1, 4, 9, 39, 100, 101, 102, 299])
def test_table_matches_the_original_adaptation(reference, patches):
    table = reference.embeddings.position_embeddings.detach()
    adapted = adapt_position_embeddings(table, (12, 101), patches)
    expected = adapted_positions(table.numpy(), (12, 101), patches)
    assert adapted.shape == expected.shape == (1, 2 + 12 * patches, TINY["hidden_size"])
    np.testing.assert_allclose(adapted.numpy(), expected, atol=2e-5)
    if patches <= 101:
        assert np.array_equal(adapted.numpy(), expected.astype(np.float32))


def test_centre_cut_takes_the_middle_columns(reference):
    table = reference.embeddings.position_embeddings.detach()[0]
    adapted = adapt_position_embeddings(table[None], (12, 101), 9)[0]
    # 9 patches: columns 46..54 of the 101, for each of the 12 frequency rows
    assert torch.equal(adapted[:2], table[:2])
    assert torch.equal(adapted[2 + 5 * 9 + 0], table[2 + 5 * 101 + 46])
    assert torch.equal(adapted[2 + 11 * 9 + 8], table[2 + 11 * 101 + 54])


@pytest.mark.parametrize("frames", [48, 98, 398, 2998])  # 0.5 s, 1 s, 4 s, 30 s of audio
def test_model_equals_ast_built_for_the_clip_length(reference, frames):
    model = AstFusionModel(AstFusionConfig(ast_config=TINY, fusion_layers=[1, 3])).eval()
    model.ast.load_state_dict(reference.state_dict(), strict=True)
    patches = time_patches(frames)
    original = ASTModel(ASTConfig(**TINY, max_length=frames)).eval()
    state = dict(reference.state_dict())
    state["embeddings.position_embeddings"] = torch.tensor(
        adapted_positions(state["embeddings.position_embeddings"].numpy(), (12, 101), patches), dtype=torch.float32)
    original.load_state_dict(state, strict=True)
    inputs = torch.randn(1, frames, 128, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        ours = model(inputs, output_plain_embedding=True)
        theirs = original(inputs, output_hidden_states=True)
        block1 = original.layernorm(theirs.hidden_states[1]).numpy()
    np.testing.assert_allclose(ours.plain_embedding.numpy(), theirs.pooler_output.numpy(), atol=5e-5)
    np.testing.assert_allclose(ours.pooler_output.numpy()[:, :64], cls_dist(block1), atol=5e-5)
    assert ours.last_hidden_state.shape == (1, patches, 2 * 12 * 64)
    frames_3 = regroup_frames(theirs.last_hidden_state.numpy(), 12)
    np.testing.assert_allclose(ours.last_hidden_state.numpy()[..., 12 * 64:], frames_3, atol=5e-5)
