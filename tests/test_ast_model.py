"""AstFusionModel's block taps, fusion and plain embedding against transformers.ASTModel (random weights).

The reference is ASTModel's own forward at its native 1024 frames (12 x 101 patches): its per-block
hidden states (pre final LayerNorm in transformers 5.23) go through a float64 LayerNorm written in the
test, then (CLS+DIST)/2 or the per-frame regrouping. Tolerance 2e-5: float32 model vs float64 reference
on values of order 1 (measured 9.4e-7).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ast_reference import TINY, cls_dist, layer_norm, random_ast_head, regroup_frames

from modeling_fusion import AstFusionConfig, AstFusionForAudioClassification, AstFusionModel

ATOL = 2e-5


def wrapped(reference, **config):
    model = AstFusionModel(AstFusionConfig(ast_config=TINY, **config)).eval()
    model.ast.load_state_dict(reference.audio_spectrogram_transformer.state_dict(), strict=True)
    return model


@pytest.fixture(scope="module")
def reference():
    return random_ast_head(seed=1)


@pytest.fixture(scope="module")
def inputs():
    return torch.randn(2, 1024, 128, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def expected(reference, inputs):
    """Per-block LayerNorm'd tokens [B, 1214, D] (index 0 = embeddings), from ASTModel's hidden states."""
    ast = reference.audio_spectrogram_transformer
    with torch.no_grad():
        out = ast(inputs, output_hidden_states=True)
    norm = ast.layernorm
    blocks = [layer_norm(h.numpy(), norm.weight.detach(), norm.bias.detach(), norm.eps) for h in out.hidden_states]
    assert len(blocks) == TINY["num_hidden_layers"] + 1
    # transformers 5.23: hidden_states[-1] is the last block before the final LayerNorm
    np.testing.assert_allclose(blocks[-1], out.last_hidden_state.numpy(), atol=ATOL)
    return blocks, out


def test_block_taps_match_ast_model(reference, inputs, expected):
    blocks, _ = expected
    model = wrapped(reference, fusion_layers=[1, 3])
    with torch.no_grad():
        out = model(inputs, output_hidden_states=True)
    assert out.frame_mask is None and len(out.hidden_states) == len(blocks) == len(out.pooled_hidden_states)
    for layer, normed in enumerate(blocks):
        np.testing.assert_allclose(out.hidden_states[layer].numpy(), regroup_frames(normed, 12), atol=ATOL)
        np.testing.assert_allclose(out.pooled_hidden_states[layer].numpy(), cls_dist(normed), atol=ATOL)
    fused = np.concatenate([cls_dist(blocks[1]), cls_dist(blocks[3])], axis=-1)
    np.testing.assert_allclose(out.pooler_output.numpy(), fused, atol=ATOL)
    frames = np.concatenate([regroup_frames(blocks[1], 12), regroup_frames(blocks[3], 12)], axis=-1)
    np.testing.assert_allclose(out.last_hidden_state.numpy(), frames, atol=ATOL)
    assert out.last_hidden_state.shape == (2, 101, 2 * 12 * 64) and model.config.hidden_size == 128


def test_plain_embedding_is_ast_models_pooler_output(reference, inputs, expected):
    _, ast_out = expected
    model = wrapped(reference, fusion_layers=[3], embedding_type="plain")
    with torch.no_grad():
        out = model(inputs, output_plain_embedding=True)
    # same modules, same float32 operations: bit-identical to ASTModel
    assert torch.equal(out.pooler_output, ast_out.pooler_output)
    assert torch.equal(out.plain_embedding, ast_out.pooler_output)
    np.testing.assert_allclose(out.last_hidden_state.numpy(), regroup_frames(ast_out.last_hidden_state.numpy(), 12),
                               atol=0)


@pytest.mark.parametrize("pooling", ["mean+max", "mean"])
def test_temporal_pooling_of_patch_frames(reference, inputs, expected, pooling):
    blocks, _ = expected
    model = wrapped(reference, fusion_layers=[2, 3], pooling=pooling)
    with torch.no_grad():
        out = model(inputs, output_hidden_states=True)

    def pooled(frames):
        return frames.mean(axis=1) + (frames.max(axis=1) if pooling == "mean+max" else 0)

    fused = np.concatenate([pooled(regroup_frames(blocks[layer], 12)) for layer in (2, 3)], axis=-1)
    np.testing.assert_allclose(out.pooler_output.numpy(), fused, atol=ATOL)
    np.testing.assert_allclose(out.pooled_hidden_states[1].numpy(), pooled(regroup_frames(blocks[1], 12)), atol=ATOL)
    assert model.config.hidden_size == 2 * 12 * 64


def test_blocks_after_the_last_fused_one_are_skipped(reference, inputs, expected):
    blocks, _ = expected
    model = wrapped(reference, fusion_layers=[1])
    calls = []
    layers = model.ast.layers
    hooks = [layer.register_forward_hook(lambda *args, i=i: calls.append(i)) for i, layer in enumerate(layers)]
    with torch.no_grad():
        out = model(inputs)
    for hook in hooks:
        hook.remove()
    assert calls == [0]
    np.testing.assert_allclose(out.pooler_output.numpy(), cls_dist(blocks[1]), atol=ATOL)


def test_audioset_head_matches_ast_for_audio_classification(reference, inputs):
    config = AstFusionConfig(ast_config=TINY, fusion_layers=[2, 3], num_labels=5,
                             problem_type="multi_label_classification",
                             classifier_layer_norm_eps=reference.config.layer_norm_eps)
    model = AstFusionForAudioClassification(config).eval()
    model.ast_fusion.ast.load_state_dict(reference.audio_spectrogram_transformer.state_dict(), strict=True)
    model.classifier.load_state_dict(reference.classifier.state_dict(), strict=True)
    labels = torch.tensor([[0, 1, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        expected_logits = reference(inputs).logits
        out = model(inputs, labels=labels)
        as_tuple = model(inputs, return_dict=False)
    assert torch.equal(out.logits, expected_logits)
    assert torch.equal(as_tuple[0], expected_logits)
    assert torch.isclose(out.loss, F.binary_cross_entropy_with_logits(expected_logits, labels))


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="fusion_layers"):
        AstFusionConfig(ast_config=TINY, fusion_layers=[0, 3])
    with pytest.raises(ValueError, match="fusion_layers"):
        AstFusionConfig(ast_config=TINY, fusion_layers=[4])
    with pytest.raises(ValueError, match="pooling"):
        AstFusionConfig(pooling="cls")
    with pytest.raises(ValueError, match="not ASTConfig architecture fields"):
        AstFusionConfig(ast_config={"hidden_sise": 64})
    assert AstFusionConfig().hidden_size == 1536 and AstFusionConfig(embedding_type="plain").hidden_size == 768
