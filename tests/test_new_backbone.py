"""The contributor example (README, "Adding a backbone"): a toy two-layer CNN gets the whole AudioFusionOutput
from the shared recipe by giving only its layer maps and plain embedding. Checked number for number against
a direct computation, so the example cannot rot."""

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig

from modeling_fusion.fusion import FusionConfigMixin, FusionModelMixin, FusionPreTrainedModel


# --- the example: everything a backbone provides ---------------------------------------------------------------
class ToyFusionConfig(FusionConfigMixin, PretrainedConfig):
    model_type = "toy-fusion"
    time_strides = (2, 4)  # input frames per frame of layers 1 and 2 (index 0, the input, is 1)

    def __init__(self, num_mel_bins=16, channels=(4, 8), fusion_layers=(1, 2), pooling="mean+max",
                 embedding_type="fusion", classifier_input="fusion", **kwargs):
        self.num_mel_bins, self.channels = num_mel_bins, list(channels)
        self.fusion_layers, self.pooling = fusion_layers, pooling  # checked on assignment, however they arrive
        self.embedding_type, self.classifier_input = embedding_type, classifier_input
        super().__init__(**kwargs)

    def fusion_layer_range(self):
        return 1, 2, "layer numbers 1-2"

    @property
    def layer_sizes(self):  # C * F per frame of layers 0-2
        return [self.num_mel_bins] + [c * self.num_mel_bins // s for c, s in zip(self.channels, self.time_strides)]


class ToyPreTrainedModel(FusionPreTrainedModel):
    config_class = ToyFusionConfig
    base_model_prefix = "toy"


class ToyFusionModel(FusionModelMixin, ToyPreTrainedModel):
    ceil_mode = True  # stride-2 convolutions with padding 1 give ceil(T / 2) frames

    def __init__(self, config):
        super().__init__(config)
        c1, c2 = config.channels
        self.convs = nn.ModuleList([nn.Conv2d(1, c1, 3, 2, 1), nn.Conv2d(c1, c2, 3, 2, 1)])
        self.post_init()

    def check_inputs(self, input_values, attention_mask):
        if input_values.ndim != 3 or input_values.shape[-1] != self.config.num_mel_bins:
            raise ValueError(f"input_values must be log-mel [batch, frames, {self.config.num_mel_bins}]")

    def layer_maps(self, log_mel, layers):  # [B, C, T, F] per layer, index 0 = the input; none above max(layers)
        maps = [log_mel.unsqueeze(1)]
        for conv in self.convs[: max(layers)]:
            maps.append(torch.relu(conv(maps[-1])))
        return maps

    def plain_outputs(self, log_mel, maps, layer_embeddings):  # its own embedding: layer 2, frequency-averaged
        frames = maps[2].mean(dim=3).transpose(1, 2)
        return frames, frames.mean(dim=1)
# ---------------------------------------------------------------------------------------------------------------


def direct(model, log_mel, layers, pooling="mean+max"):
    """One clip [T, F] by hand: layer maps, max over each final frame's 4 input frames (or fewer at the end),
    flattened c * F + f, concatenated; clip embedding the temporal mean + max."""
    x = log_mel[None, None]
    maps = [x]
    for conv in model.convs:
        maps.append(torch.relu(conv(maps[-1])))
    frames_out = maps[2].shape[2]
    parts = []
    for layer in layers:
        feature_map = maps[layer][0]  # [C, T_l, F_l]
        kernel = 4 // [1, 2, 4][layer]
        rows = [feature_map[:, t * kernel:(t + 1) * kernel].amax(dim=1).reshape(-1) for t in range(frames_out)]
        parts.append(torch.stack(rows))
    frames = torch.cat(parts, dim=-1)
    pooled = {"mean+max": frames.mean(0) + frames.amax(0), "mean": frames.mean(0), "max": frames.amax(0)}[pooling]
    return frames, pooled


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ToyFusionModel(ToyFusionConfig()).eval()


def test_toy_backbone_gets_every_output_field(model):
    log_mel = torch.randn(2, 23, 16)
    mask = torch.tensor([[1] * 23, [1] * 13 + [0] * 10])
    with torch.no_grad():
        out = model(log_mel, attention_mask=mask, output_hidden_states=True, output_plain_embedding=True)
    assert out.last_hidden_state.shape == (2, 6, 4 * 8 + 8 * 4) and out.frame_mask.sum(1).tolist() == [6, 4]
    for index, length in enumerate((23, 13)):
        frames, pooled = direct(model, log_mel[index, :length], [1, 2])
        torch.testing.assert_close(out.last_hidden_state[index, : len(frames)], frames, rtol=0, atol=1e-6)
        torch.testing.assert_close(out.pooler_output[index], pooled, rtol=0, atol=1e-6)
        for layer in range(3):
            layer_frames, layer_pooled = direct(model, log_mel[index, :length], [layer])
            torch.testing.assert_close(out.hidden_states[layer][index, : len(frames)], layer_frames, rtol=0, atol=1e-6)
            torch.testing.assert_close(out.pooled_hidden_states[layer][index], layer_pooled, rtol=0, atol=1e-6)
    assert not out.last_hidden_state[1, 4:].any(), "frames past a clip's end are zero"
    plain = model.layer_maps(log_mel[:1], [2])[2].mean(dim=(2, 3))
    torch.testing.assert_close(out.plain_embedding[0], plain[0], rtol=0, atol=1e-6)


def test_toy_backbone_options_and_tuple_output(model, tmp_path):
    log_mel = torch.randn(1, 16, 16)
    model.config.fusion_layers, model.config.pooling = [2], "max"
    try:
        with torch.no_grad():
            frames, pooled = model(log_mel, return_dict=False)
        torch.testing.assert_close(pooled[0], direct(model, log_mel[0], [2], "max")[1], rtol=0, atol=1e-6)
        model.config.embedding_type = "plain"
        with torch.no_grad():
            plain = model(log_mel)
        assert plain.pooler_output.shape == (1, 8) and plain.plain_embedding is None
    finally:
        model.config.fusion_layers, model.config.pooling, model.config.embedding_type = [1, 2], "mean+max", "fusion"
    with pytest.raises(ValueError, match="fusion_layers must be layer numbers 1-2, got \\[3\\]"):
        model.config.fusion_layers = [3]
    model.save_pretrained(tmp_path)
    reloaded = ToyFusionModel.from_pretrained(tmp_path, fusion_layers=[2, 1]).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(log_mel).pooler_output, model(log_mel).pooler_output)
