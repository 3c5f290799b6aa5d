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


def _mask(lengths, total):
    return (torch.arange(total) < torch.tensor(lengths)[:, None]).long()


def _backbone(name):
    """(model, inputs with clips of mixed lengths, layer sets: pairs with and without the last layer and a
    triple, poolings) of a random small model; BatchNorm statistics are left at their defaults."""
    from ast_reference import TINY
    from encoder_testing import clips, tiny_encoder
    from modeling_fusion import (AstFusionConfig, AstFusionModel, EfficientATFusionConfig, EfficientATFusionModel,
                                 VGGishFusionConfig, VGGishFusionModel, YAMNetFusionConfig, YAMNetFusionModel)
    from modeling_fusion.configuration_encoder_fusion import EncoderFusionConfig
    from modeling_fusion.modeling_encoder_fusion import EncoderFusionModel

    torch.manual_seed(0)
    temporal = ["mean+max", "mean", "max"]
    if name in ("wav2vec2", "whisper", "clap"):
        module, _, extractor = tiny_encoder(name)
        model = EncoderFusionModel(EncoderFusionConfig(encoder_config=module.config), encoder=module)
        padding = {"padding": True} if name == "wav2vec2" else {}
        waves = clips(extractor.sampling_rate, (0.5, 1.0))
        inputs = dict(extractor(waves, sampling_rate=extractor.sampling_rate, return_tensors="pt", **padding))
        layer_sets = {"wav2vec2": [[1, 3], [0, 1], [1, 2], [0, 2, 3]]}.get(name, [[0, 2], [0, 1], [0, 1, 2]])
        return model, inputs, layer_sets, temporal
    frames = {"cnn14": (200, 64, [200, 130, 64]), "efficientat": (128, 128, [128, 90, 40]),
              "ast": (128, 128, [128, 100, 40])}
    if name in frames:
        total, bins, lengths = frames[name]
        inputs = dict(input_values=torch.randn(3, total, bins), attention_mask=_mask(lengths, total))
    else:  # YAMNet patches / VGGish examples [B, E, 96, 64], E real ones per clip
        inputs = dict(input_values=torch.randn(3, 3, 96, 64), attention_mask=_mask([3, 1, 2], 3))
    model, layer_sets = {
        "cnn14": lambda: (Cnn14FusionModel(Cnn14FusionConfig(**SMALL)), [[3, 6], [1, 2], [2, 4], [1, 3, 5]]),
        "efficientat": lambda: (EfficientATFusionModel(EfficientATFusionConfig(width_mult=0.1)),
                                [[12, 14], [3, 9], [1, 8], [2, 5, 17]]),
        "yamnet": lambda: (YAMNetFusionModel(YAMNetFusionConfig()), [[6, 14], [2, 5], [1, 7], [3, 8, 13]]),
        "vggish": lambda: (VGGishFusionModel(VGGishFusionConfig()), [[10, 15], [1, 2], [3, 17], [4, 12, 22]]),
        "ast": lambda: (AstFusionModel(AstFusionConfig(ast_config=TINY, fusion_layers=[1, 3])),
                        [[1, 3], [1, 2], [2, 3], [1, 2, 3]]),
    }[name]()
    return model, inputs, layer_sets, (["cls+dist"] if name == "ast" else []) + temporal


BACKBONES = ["cnn14", "efficientat", "yamnet", "vggish", "ast", "wav2vec2", "whisper", "clap"]


def _close(actual, expected):
    """<= 1e-6 relative to the largest value: the same numbers, up to float rounding."""
    scale = float(expected.abs().max()) or 1.0
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_fused_output_is_the_chosen_layers_hidden_states(backbone):
    """The paper's frame-rate rule on every backbone: each layer is pooled to the backbone's final frame rate,
    so for any layer set (with or without the last layer) and clips of mixed lengths, `last_hidden_state` is
    cat(hidden_states[l]) and `pooler_output` cat(pooled_hidden_states[l]); for temporal poolings it is also
    the masked pooling of `last_hidden_state`. The fused pass runs only the layers it needs, the
    hidden-states pass all of them: two code paths that must agree."""
    model, inputs, layer_sets, poolings = _backbone(backbone)
    model.eval()
    for pooling in poolings:  # every layer set with the default pooling, the triple with the others
        model.config.pooling = pooling
        with torch.no_grad():
            every = model(**inputs, output_hidden_states=True)
        for layers in layer_sets if pooling == poolings[0] else layer_sets[-1:]:
            model.config.fusion_layers = layers
            with torch.no_grad():
                out = model(**inputs)
            real = out.frame_mask
            if real is None:
                real = torch.ones(out.last_hidden_state.shape[:2], dtype=torch.bool)
            frames = torch.cat([every.hidden_states[layer] for layer in layers], dim=-1)
            assert frames.shape[1] == out.last_hidden_state.shape[1], (layers, pooling)
            _close(out.last_hidden_state[real], frames[real])
            _close(out.pooler_output, torch.cat([every.pooled_hidden_states[layer] for layer in layers], dim=-1))
            assert out.pooler_output.shape[1] == model.config.hidden_size
            if pooling != "cls+dist":
                _close(out.pooler_output, pool_frames(out.last_hidden_state, pooling, out.frame_mask))
