"""PANNs CNN14 as Hugging Face models: multilayer fusion embeddings and the AudioSet head."""

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_cnn14 import MIN_FRAMES, Cnn14FusionConfig
from .fusion import FusionModelMixin, FusionPreTrainedModel, pool_frames
from .classification import classify


class Cnn14ConvBlock(nn.Module):
    """(conv3x3 no bias -> BN -> ReLU) x 2, then 2x2 average pooling (none for block 6)."""

    def __init__(self, in_channels, out_channels, pool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = pool

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, self.pool) if self.pool > 1 else x


class Cnn14PreTrainedModel(FusionPreTrainedModel):
    config_class = Cnn14FusionConfig
    base_model_prefix = "cnn14"


class Cnn14FusionModel(FusionModelMixin, Cnn14PreTrainedModel):
    """CNN14 body on log-mel `input_values` [B, T, 64] -> fused per-frame features and clip embedding.

    Fused frames are 32 input frames (320 ms at 10 ms hop); blocks 3 + 6 give 2048 + 4096 = 6144-d.
    `hidden_states[l]` is ConvBlock l max-pooled to that rate and flattened channel-major; index 0
    is the bn0-normalised log-mel. Blocks after the last one needed are not computed.
    """

    _keys_to_ignore_on_load_unexpected = [r"^classifier\."]  # loading the body from a head checkpoint
    min_frames, min_audio = MIN_FRAMES, "about 0.31 s of audio"

    def __init__(self, config):
        super().__init__(config)
        self.bn0 = nn.BatchNorm2d(config.num_mel_bins)
        channels = [1] + config.block_channels
        for index in range(len(config.block_channels)):
            pool = 2 if index < 5 else 1
            self.add_module(f"conv_block{index + 1}", Cnn14ConvBlock(channels[index], channels[index + 1], pool))
        self.fc1 = nn.Linear(config.block_channels[-1], config.block_channels[-1])
        self.post_init()

    def blocks(self):
        return [getattr(self, f"conv_block{index}") for index in range(1, len(self.config.block_channels) + 1)]

    def check_inputs(self, input_values, attention_mask):
        """input_values [B, T, num_mel_bins] log-mel (dB); attention_mask [B, T] marks real frames."""
        if input_values.ndim != 3 or input_values.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_values must be log-mel [batch, frames, {self.config.num_mel_bins}], got "
                f"{tuple(input_values.shape)}; compute it with Cnn14FeatureExtractor."
            )

    def layer_maps(self, log_mel, layers):
        """[b, T, mel] -> [bn0(log-mel), ConvBlock 1, ..., ConvBlock max(layers)], each [b, C, T_l, F_l]."""
        x = self.bn0(log_mel.unsqueeze(1).transpose(1, 3)).transpose(1, 3)  # [b, 1, T, F], BN per mel bin
        maps = [x.contiguous(memory_format=torch.channels_last)]  # faster convolutions on CPU (oneDNN)
        for block in self.blocks()[: max(layers)]:
            maps.append(block(maps[-1]))
        return maps

    def plain_outputs(self, log_mel, maps, layer_embeddings):
        """PANNs' embedding: ConvBlock 6 averaged over frequency [b, T', 2048], mean+max over time, fc1, ReLU."""
        frames = maps[6].mean(dim=3).transpose(1, 2)
        return frames, F.relu(self.fc1(pool_frames(frames, "mean+max")))


class Cnn14ForAudioClassification(Cnn14PreTrainedModel):
    """CNN14 with a linear classifier: PANNs' AudioSet head on fc1 (527 labels, sigmoid), or a probe
    on the fused embedding (`config.classifier_input == "fusion"`). Returns logits; `labels` give a loss."""

    def __init__(self, config):
        super().__init__(config)
        self.cnn14 = Cnn14FusionModel(config)
        width = config.block_channels[-1] if config.classifier_input == "plain" else config.hidden_size
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(self, input_values, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None):
        return classify(self, input_values, attention_mask, labels, output_hidden_states, return_dict)
