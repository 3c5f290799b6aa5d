"""CNN14 model behaviour: layer outputs, plain embedding, mixed-length batches, bad input."""

import numpy as np
import pytest
import torch

from modeling_fusion.configuration_cnn14 import Cnn14FusionConfig
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.fusion import pool_frames
from modeling_fusion.modeling_cnn14 import Cnn14ForAudioClassification, Cnn14FusionModel

SMALL = dict(block_channels=(4, 8, 8, 16, 16, 32))
RATE = 16000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Cnn14FusionModel(Cnn14FusionConfig(**SMALL)).eval()


def noise(seconds, seed):
    return np.random.default_rng(seed).standard_normal(int(seconds * RATE)).astype(np.float32) * 0.1


def embed(model, clips, **kwargs):
    features = Cnn14FeatureExtractor()(clips, sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        return model(**features, **kwargs)


def test_mixed_length_batch_equals_single_clips(model):
    clips = [noise(1.0, 0), noise(2.3, 1), noise(0.5, 2), noise(2.3, 3)]
    batch = embed(model, clips, output_hidden_states=True, output_plain_embedding=True)
    for row, clip in enumerate(clips):
        single = embed(model, clip, output_hidden_states=True, output_plain_embedding=True)
        frames = single.last_hidden_state.shape[1]
        torch.testing.assert_close(batch.pooler_output[row], single.pooler_output[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(batch.plain_embedding[row], single.plain_embedding[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(batch.last_hidden_state[row, :frames], single.last_hidden_state[0])
        assert batch.frame_mask[row].sum() == frames
        assert batch.last_hidden_state[row, frames:].abs().sum() == 0
        for layer in range(7):
            pooled = pool_frames(batch.hidden_states[layer][row:row + 1], "mean+max", batch.frame_mask[row:row + 1])
            single_pooled = pool_frames(single.hidden_states[layer], "mean+max")
            torch.testing.assert_close(pooled, single_pooled, rtol=1e-5, atol=1e-6)


def test_single_layer_fusion_equals_its_hidden_state(model):
    """hidden_states[l] pooled is the probe of layer l; a fusion of [6] alone is the same vector."""
    clip = noise(3.0, 4)
    out = embed(model, clip, output_hidden_states=True)
    only6 = Cnn14FusionModel(Cnn14FusionConfig(fusion_layers=[6], **SMALL))
    only6.load_state_dict(model.state_dict())
    torch.testing.assert_close(embed(only6.eval(), clip).pooler_output, pool_frames(out.hidden_states[6]))
    for hidden, pooled in zip(out.hidden_states, out.pooled_hidden_states, strict=True):
        torch.testing.assert_close(pooled, pool_frames(hidden))
    fused = torch.cat([out.hidden_states[3], out.hidden_states[6]], dim=-1)
    torch.testing.assert_close(out.last_hidden_state, fused)


def test_plain_embedding_is_panns_fc1(model):
    """embedding_type="plain": block 6, frequency mean, temporal mean + max, fc1, ReLU."""
    clip = noise(2.0, 5)
    plain_model = Cnn14FusionModel(Cnn14FusionConfig(embedding_type="plain", **SMALL))
    plain_model.load_state_dict(model.state_dict())
    block6 = {}
    model.conv_block6.register_forward_hook(lambda m, a, out: block6.__setitem__("out", out))
    fusion_out = embed(model, clip, output_plain_embedding=True)
    x = block6["out"].mean(dim=3)
    expected = torch.relu(model.fc1(x.amax(dim=2) + x.mean(dim=2)))
    plain_out = embed(plain_model.eval(), clip)
    torch.testing.assert_close(plain_out.pooler_output, expected)
    torch.testing.assert_close(fusion_out.plain_embedding, expected)
    assert plain_out.pooler_output.shape[1] == plain_model.config.hidden_size == 32


def test_layers_after_the_last_fused_are_not_run():
    model = Cnn14FusionModel(Cnn14FusionConfig(fusion_layers=[2], **SMALL)).eval()
    ran = []
    for block in range(1, 7):
        getattr(model, f"conv_block{block}").register_forward_hook(lambda m, a, o, block=block: ran.append(block))
    embed(model, noise(1.0, 6))
    assert ran == [1, 2]


def test_classifier_loss_by_problem_type():
    config = Cnn14FusionConfig(id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2}, **SMALL)
    model = Cnn14ForAudioClassification(config).eval()
    features = Cnn14FeatureExtractor()([noise(1.0, 7), noise(1.0, 8)], sampling_rate=RATE, return_tensors="pt")
    single = model(**features, labels=torch.tensor([0, 2]))
    torch.testing.assert_close(single.loss, torch.nn.functional.cross_entropy(single.logits, torch.tensor([0, 2])))
    model.config.problem_type = "multi_label_classification"
    targets = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    multi = model(**features, labels=targets)
    torch.testing.assert_close(multi.loss, torch.nn.functional.binary_cross_entropy_with_logits(multi.logits, targets))


@pytest.mark.parametrize(
    "audio,kwargs,message",
    [
        (np.zeros(0, np.float32), {}, "empty"),
        (np.zeros(4000, np.float32), {}, "at least 4960 samples"),
        (np.full(16000, np.nan, np.float32), {}, "NaN or Inf"),
        (np.r_[np.zeros(15999, np.float32), np.inf].astype(np.float32), {}, "NaN or Inf"),
        (np.zeros(16000, np.float32), {"sampling_rate": 44100}, "expects 16000 Hz"),
        (np.zeros((16000, 2), np.float32), {}, "2-channel"),
        ([np.zeros((2, 16000), np.float32)], {}, "mono 1-D"),
        (np.ones(16000, np.uint16), {}, "dtype uint16"),  # int16 PCM is scaled, see test_input_paths
    ],
)
def test_bad_input_raises_clear_error(audio, kwargs, message):
    kwargs = {"sampling_rate": RATE, **kwargs}
    with pytest.raises(ValueError, match=message):
        Cnn14FeatureExtractor()(audio, **kwargs)


def test_model_rejects_too_few_frames(model):
    with pytest.raises(ValueError, match="at least 32 frames"):
        model(torch.zeros(1, 20, 64))
    with pytest.raises(ValueError, match="log-mel"):
        model(torch.zeros(1, 100, 128))
