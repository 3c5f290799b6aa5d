"""EfficientAT MobileNetV3 (Schmid et al., ICASSP 2023) as Hugging Face models: multilayer fusion
embeddings and the AudioSet head."""

import torch
from torch import nn

from .configuration_efficientat import BLOCKS, NUM_STAGES, EfficientATFusionConfig, round_channels
from .fusion import FusionModelMixin, FusionPreTrainedModel
from .classification import classify


class EfficientATConvNorm(nn.Module):
    """k x k conv (no bias, padding (k - 1) / 2) -> BatchNorm (eps 1e-3) -> activation (or none)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, activation=None):
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.01)
        self.activation = activation or nn.Identity()

    def forward(self, x):
        return self.activation(self.bn(self.conv(x)))


class EfficientATSqueezeExcitation(nn.Module):
    """Channel gate: mean over frequency and time -> Linear -> ReLU -> Linear -> sigmoid, times the input.

    `fixed_gate` (None by default; [B or 1, C]) replaces the gate computed from the input: the exact long-clip
    scheme (`clip_gates.py`) sets it to the whole clip's gate while it runs the clip in chunks.
    """

    def __init__(self, channels, squeeze_channels):
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze_channels)
        self.fc2 = nn.Linear(squeeze_channels, channels)
        self.fixed_gate = None

    def gate(self, mean):
        """[B, C] input mean over frequency and time -> [B, C] gate in (0, 1)."""
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(mean))))

    def forward(self, x):
        gate = self.gate(x.mean(dim=(2, 3))) if self.fixed_gate is None else self.fixed_gate
        return x * gate[:, :, None, None]


class EfficientATInvertedResidual(nn.Module):
    """MobileNetV3 block features.{index + 1}: [1x1 expand] -> depthwise k x k -> [SE] -> 1x1 project
    (no activation), plus the input when the stride is 1 and the channels are unchanged."""

    def __init__(self, config, index):
        super().__init__()
        kernel, in_base, expanded_base, out_base, use_se, hardswish, stride = BLOCKS[index]
        in_channels, expanded, out_channels = (config.scaled(c) for c in (in_base, expanded_base, out_base))
        activation = nn.Hardswish if hardswish else nn.ReLU
        self.expand = (
            EfficientATConvNorm(in_channels, expanded, 1, activation=activation()) if expanded != in_channels else None
        )
        self.depthwise = EfficientATConvNorm(expanded, expanded, kernel, stride, expanded, activation())
        self.se = EfficientATSqueezeExcitation(expanded, round_channels(expanded // 4)) if use_se else None
        self.project = EfficientATConvNorm(expanded, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class EfficientATPreTrainedModel(FusionPreTrainedModel):
    config_class = EfficientATFusionConfig
    base_model_prefix = "efficientat"


class EfficientATFusionModel(FusionModelMixin, EfficientATPreTrainedModel):
    """EfficientAT MobileNetV3 body on log-mel `input_values` [B, T, 128] -> fused per-frame features
    and clip embedding.

    `features[k]` is upstream's stage features.k: the stride-2 stem, 15 inverted-residual blocks and
    a 1x1 conv; its map is [B, C_k, F_k, T_k] with F_k = 128 / s_k, T_k = ceil(T / s_k). Layer
    k + 1 is features.k; `hidden_states[0]` is the log-mel input. Every hidden state is max-pooled
    along time to the final frame rate (32 input frames, 320 ms; sizes round up, so a clip of T
    frames gives ceil(T / 32)) and flattened channel-major over (channels x frequency). The fused
    `last_hidden_state` is the chosen layers' hidden states concatenated (`fusion.fusion_outputs`).
    Stages after the last one needed are not computed.
    """

    _keys_to_ignore_on_load_unexpected = [r"^classifier\."]  # loading the body from a head checkpoint
    ceil_mode = True

    def __init__(self, config):
        super().__init__(config)
        channels = config.stage_channels
        stem = EfficientATConvNorm(1, channels[0], 3, stride=2, activation=nn.Hardswish())
        blocks = [EfficientATInvertedResidual(config, index) for index in range(len(BLOCKS))]
        last = EfficientATConvNorm(channels[-2], channels[-1], 1, activation=nn.Hardswish())
        self.features = nn.ModuleList([stem, *blocks, last])
        self.post_init()

    def feature_maps(self, input_values, num_stages=NUM_STAGES):
        """[B, T, mel] log-mel -> outputs of features.0 ... features.{num_stages - 1}, each [B, C, F, T]."""
        x = input_values.transpose(1, 2).unsqueeze(1)  # EfficientAT's layout [B, 1, mel, time]
        maps = []
        for stage in self.features[:num_stages]:
            x = stage(x)
            maps.append(x)
        return maps

    def check_inputs(self, input_values, attention_mask):
        """input_values [B, T, num_mel_bins] normalised log-mel; attention_mask [B, T] marks real frames."""
        if input_values.ndim != 3 or input_values.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_values must be log-mel [batch, frames, {self.config.num_mel_bins}], got "
                f"{tuple(input_values.shape)}; compute it with EfficientATFeatureExtractor."
            )

    def layer_maps(self, log_mel, layers):
        """[b, T, mel] -> [log-mel, features.0, ..., features.{max(layers) - 1}], each [b, C, T_l, F_l]."""
        maps = self.feature_maps(log_mel, max(layers))
        return [log_mel.unsqueeze(1)] + [m.transpose(2, 3) for m in maps]

    def plain_outputs(self, log_mel, maps, layer_embeddings):
        """EfficientAT's embedding, the global average of features.16; frames: it averaged over frequency."""
        last = maps[NUM_STAGES]  # [b, C, T', F']
        return last.mean(dim=3).transpose(1, 2), last.mean(dim=(2, 3))


class EfficientATAudioSetHead(nn.Module):
    """EfficientAT's MLP head on the plain embedding: Linear -> Hardswish -> Dropout -> Linear (logits)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.embedding_size, config.head_hidden_size)
        self.activation = nn.Hardswish()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.out_proj = nn.Linear(config.head_hidden_size, config.num_labels)

    def forward(self, embedding):
        return self.out_proj(self.dropout(self.activation(self.dense(embedding))))


class EfficientATForAudioClassification(EfficientATPreTrainedModel):
    """EfficientAT with a classifier: its AudioSet MLP head on the plain embedding (527 labels,
    sigmoid), or a linear probe on the fused embedding (`config.classifier_input == "fusion"`).
    Returns logits; `labels` give a loss."""

    def __init__(self, config):
        super().__init__(config)
        self.efficientat = EfficientATFusionModel(config)
        if config.classifier_input == "plain":
            self.classifier = EfficientATAudioSetHead(config)
        else:
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_values, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None):
        return classify(self, input_values, attention_mask, labels, output_hidden_states, return_dict)
