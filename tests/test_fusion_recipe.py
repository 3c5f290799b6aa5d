"""The shared fusion recipe against direct computations, and CNN14's use of it at several lengths."""

import numpy as np
import pytest
import torch

from modeling_fusion.configuration_cnn14 import Cnn14FusionConfig
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.fusion import forward_by_length, fuse_layers, pool_frames
from modeling_fusion.modeling_cnn14 import Cnn14FusionModel

SMALL = dict(block_channels=(4, 8, 8, 16, 16, 32))


def direct_fusion(maps, kernels, pooling="mean+max"):
    """numpy loops: frame t of layer l = max over input frames [t*k, (t+1)*k) of map[c, :, f] at c*F + f."""
    frames = min(m.shape[2] // k for m, k in zip(maps, kernels))
    vectors = []
    for t in range(frames):
        parts = []
        for feature_map, kernel in zip(maps, kernels):
            _, channels, _, freqs = feature_map.shape
            part = np.empty(channels * freqs)
            for c in range(channels):
                for f in range(freqs):
                    part[c * freqs + f] = feature_map[0, c, t * kernel:(t + 1) * kernel, f].max()
            parts.append(part)
        vectors.append(np.concatenate(parts))
    vectors = np.stack(vectors)
    pooled = {"mean": vectors.mean(0), "max": vectors.max(0), "mean+max": vectors.mean(0) + vectors.max(0)}
    return vectors, pooled[pooling]


@pytest.mark.parametrize("pooling", ["mean+max", "mean", "max"])
def test_fuse_and_pool_match_direct_computation(pooling):
    generator = torch.Generator().manual_seed(0)
    maps = [torch.randn(1, 3, 37, 5, generator=generator), torch.randn(1, 4, 9, 2, generator=generator)]
    frames = fuse_layers(maps, [2, 8])
    expected_frames, expected = direct_fusion([m.numpy() for m in maps], [4, 1], pooling)
    np.testing.assert_allclose(frames[0].numpy(), expected_frames, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pool_frames(frames, pooling)[0].numpy(), expected, rtol=1e-6, atol=1e-6)


def test_masked_pooling_ignores_padded_frames():
    frames = torch.randn(2, 6, 3)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6], dtype=torch.bool)
    pooled = pool_frames(frames, "mean+max", mask)
    expected = frames[0, :4].mean(0) + frames[0, :4].amax(0)
    torch.testing.assert_close(pooled[0], expected)
    torch.testing.assert_close(pooled[1], frames[1].mean(0) + frames[1].amax(0))


def test_ceil_mode_frame_counts_agree():
    """Backbones whose strided layers round up (EfficientAT) keep equal counts with ceil_mode."""
    sizes = [100]
    for _ in range(5):
        sizes.append(-(-sizes[-1] // 2))
    maps = [torch.randn(1, 2, size, 3) for size in sizes[1:]]
    fused = fuse_layers(maps, [2, 4, 8, 16, 32], ceil_mode=True)
    assert fused.shape == (1, sizes[-1], 5 * 6)
    with pytest.raises(ValueError, match="disagree"):
        fuse_layers(maps, [2, 4, 8, 16, 32])


def test_forward_by_length_pads_groups_and_marks_frames():
    def forward(values):  # one "frame" per 2 input steps, pooled = sum
        frames = values.unfold(1, 2, 2).sum(-1)
        return {"last_hidden_state": frames, "pooler_output": frames.sum(1)}

    values = torch.arange(12.0).reshape(2, 6, 1)
    out = forward_by_length(forward, values, torch.tensor([6, 4]))
    torch.testing.assert_close(out["pooler_output"][1], forward(values[1:, :4])["pooler_output"][0])
    assert out["frame_mask"].tolist() == [[True, True, True], [True, True, False]]
    assert out["last_hidden_state"][1, 2].abs().sum() == 0


@pytest.mark.parametrize("seconds,frames", [(0.4, 1), (1.37, 4), (10.0, 31)])
def test_cnn14_fusion_matches_direct_computation(seconds, frames):
    torch.manual_seed(0)
    model = Cnn14FusionModel(Cnn14FusionConfig(**SMALL)).eval()
    extractor = Cnn14FeatureExtractor()
    audio = np.random.default_rng(1).standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1
    taps = {}
    for block in (3, 6):
        getattr(model, f"conv_block{block}").register_forward_hook(
            lambda module, args, out, block=block: taps.__setitem__(block, out.numpy()))
    with torch.no_grad():
        out = model(**extractor(audio, sampling_rate=16000, return_tensors="pt"))
    expected_frames, expected = direct_fusion([taps[3], taps[6]], [4, 1])
    assert len(expected_frames) == frames == out.last_hidden_state.shape[1]
    np.testing.assert_allclose(out.last_hidden_state[0].numpy(), expected_frames, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.pooler_output[0].numpy(), expected, rtol=1e-5, atol=1e-6)
