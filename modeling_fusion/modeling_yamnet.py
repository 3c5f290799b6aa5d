"""Google's YAMNet (MobileNetV1, AudioSet 521 classes) as Hugging Face models: multilayer fusion
embeddings and the AudioSet head."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_yamnet import LAYERS, NUM_LAYERS, YAMNetFusionConfig
from .fusion import FusionModelMixin, FusionPreTrainedModel, pool_frames
from .classification import classification_loss, classify

PATCHES_PER_CHUNK = 64  # patches encoded at once for the plain embedding: ~40 MB of activations on CPU


def same_padding(size, kernel, stride):
    """TF "SAME" padding of one axis: (before, after), the odd extra element after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class YAMNetConv(nn.Conv2d):
    """Conv (bias = folded BatchNorm) with TF "SAME" padding, then ReLU: [B, C, T, F] -> [B, C', T', F'],
    T' = ceil(T / stride). The padding depends on the input size, as in TF."""

    def forward(self, x):
        (kernel_t, kernel_f), (stride_t, stride_f) = self.kernel_size, self.stride
        pad_t, pad_f = same_padding(x.shape[2], kernel_t, stride_t), same_padding(x.shape[3], kernel_f, stride_f)
        if pad_t[0] == pad_t[1] and pad_f[0] == pad_f[1]:  # symmetric: let the convolution pad, no copy
            out = F.conv2d(x, self.weight, self.bias, self.stride, (pad_t[0], pad_f[0]), groups=self.groups)
        else:
            out = super().forward(F.pad(x, (*pad_f, *pad_t)))
        return torch.relu_(out)


class YAMNetSeparableLayer(nn.Module):
    """Layers 2-14: 3x3 depthwise conv -> ReLU -> 1x1 pointwise conv -> ReLU."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.depthwise = YAMNetConv(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = YAMNetConv(in_channels, out_channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class YAMNetPreTrainedModel(FusionPreTrainedModel):
    config_class = YAMNetFusionConfig
    base_model_prefix = "yamnet"


class YAMNetFusionModel(FusionModelMixin, YAMNetPreTrainedModel):
    """YAMNet body on log-mel patches `input_values` [B, E, 96, 64] (YAMNetFeatureExtractor) ->
    fused per-frame features and clip embedding.

    `layers[l - 1]` is YAMNet's `layer{l}` (layer 1: 3x3/2 conv; 2-14: depthwise-separable).

    How fusion frames are formed: the body is fully convolutional, so for the fused features and
    `hidden_states` it runs once over the clip's whole log-mel, rebuilt from the half-overlapping
    patches (T = 48 (E + 1) frames, the clip padded as YAMNet pads it). Each layer's map [C, T_l, F_l]
    is max-pooled in time to the final layer's rate (320 ms, layers 13-14; T_l = ceil(T / stride))
    and flattened channel-major. This gives one regular frame grid, no frame twice
    (per-patch maps would repeat every 0.48 s of audio twice) and half the work of the per-patch
    pass; it equals YAMNet's per-patch computation exactly for a one-patch clip. Interior frames of
    longer clips see real audio where a patch sees its zero padding, so deep layers (receptive field
    up to 315 frames at layer 14) differ most from the per-patch maps.

    The plain embedding is YAMNet's own: each 0.96 s patch through the body on its own, layer 14
    averaged over time and frequency (1024-d per patch), pooled over the clip's patches with
    `config.pooling`. `hidden_states[l]` is layer l at 320 ms frames (index 0 the log-mel input);
    layers after the last one needed are not computed.
    """

    _keys_to_ignore_on_load_unexpected = [r"^classifier\."]  # loading the body from a head checkpoint
    ceil_mode = True
    plain_from_last_layer = False  # the plain embedding runs each patch on its own

    def __init__(self, config):
        super().__init__(config)
        layers, channels = [], 1
        for index, (stride, out_channels) in enumerate(LAYERS):
            if index == 0:
                layers.append(YAMNetConv(channels, out_channels, 3, stride))
            else:
                layers.append(YAMNetSeparableLayer(channels, out_channels, stride))
            channels = out_channels
        self.layers = nn.ModuleList(layers)
        self.post_init()

    def feature_maps(self, log_mel, num_layers=NUM_LAYERS):
        """[b, T, mel] log-mel -> outputs of layers 1 ... num_layers, each [b, C, T_l, F_l] laid out
        channels-last (NHWC, as in TF), which makes the depthwise convolutions ~1.6x faster on CPU."""
        x = log_mel.unsqueeze(1)
        maps = []
        for index, layer in enumerate(self.layers[:num_layers]):
            x = layer(x)
            if index == 0:
                x = x.contiguous(memory_format=torch.channels_last)  # later layers keep this layout
            maps.append(x)
        return maps

    def stitch(self, patches):
        """[b, E, 96, mel] half-overlapping patches -> [b, 48 (E - 1) + 96, mel] the log-mel they were cut from."""
        hop = self.config.patch_hop_frames
        head = patches[:, :, :hop].reshape(patches.shape[0], -1, patches.shape[-1])
        return torch.cat([head[:, : hop * (patches.shape[1] - 1)], patches[:, -1]], dim=1)

    def patch_embeddings(self, patches):
        """[b, E, 96, mel] -> [b, E, 1024]: YAMNet's embedding of each patch on its own."""
        flat = patches.reshape(-1, *patches.shape[2:])
        embeddings = [self.feature_maps(chunk)[-1].mean(dim=(2, 3)) for chunk in flat.split(PATCHES_PER_CHUNK)]
        return torch.cat(embeddings).view(*patches.shape[:2], -1)

    def check_inputs(self, input_values, attention_mask):
        """input_values [B, E, 96, 64] log-mel patches; attention_mask [B, E] marks real patches."""
        expected = (self.config.patch_frames, self.config.num_mel_bins)
        if input_values.ndim != 4 or tuple(input_values.shape[2:]) != expected:
            raise ValueError(
                f"input_values must be log-mel patches [batch, patches, {expected[0]}, {expected[1]}], got "
                f"{tuple(input_values.shape)}; compute them with YAMNetFeatureExtractor."
            )
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_values.shape[:2]):
            raise ValueError(f"attention_mask must be [batch, patches] = {tuple(input_values.shape[:2])}, "
                             f"got {tuple(attention_mask.shape)}.")

    def layer_maps(self, patches, layers):
        """[b, E, 96, mel] patches -> [log-mel, layer 1, ..., layer max(layers)] over the stitched clip."""
        log_mel = self.stitch(patches)
        return [log_mel.unsqueeze(1)] + self.feature_maps(log_mel, max(layers))

    def plain_outputs(self, patches, maps, layer_embeddings):
        """YAMNet's embedding of each patch [b, E, 1024], pooled over the clip's patches with `config.pooling`."""
        per_patch = self.patch_embeddings(patches)
        return per_patch, pool_frames(per_patch, self.config.pooling)


class YAMNetForAudioClassification(YAMNetPreTrainedModel):
    """YAMNet with a classifier: its AudioSet dense layer (521 labels, sigmoid) on each patch's
    embedding, or a linear probe on the fused embedding (`config.classifier_input == "fusion"`).

    With the AudioSet head a clip's score per class is the mean of its patches' sigmoid scores, as
    YAMNet's `inference.py` and `export.py` pool them; `logits` are log(p / (1 - p)) of those clip
    scores (so a sigmoid gives them back) and `labels` give a loss on them.
    """

    def __init__(self, config):
        super().__init__(config)
        self.yamnet = YAMNetFusionModel(config)
        width = config.embedding_size if config.classifier_input == "plain" else config.hidden_size
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def patch_scores(self, input_values, attention_mask=None):
        """[B, E, 96, 64] patches -> [B, E, num_labels] sigmoid scores per patch (padded patches: 0)."""
        if input_values.ndim != 4:
            raise ValueError(f"input_values must be log-mel patches [batch, patches, 96, 64], got "
                             f"{tuple(input_values.shape)}; compute them with YAMNetFeatureExtractor.")
        weight = self.classifier.weight
        patches = input_values.to(device=weight.device, dtype=weight.dtype)
        mask = torch.ones(patches.shape[:2], dtype=torch.bool, device=weight.device) if attention_mask is None \
            else attention_mask.to(weight.device).bool()
        scores = patches.new_zeros(*patches.shape[:2], self.config.num_labels)
        scores[mask] = torch.sigmoid(self.classifier(self.yamnet.patch_embeddings(patches[mask][None])[0]))
        return scores

    def forward(self, input_values, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None):
        if self.config.classifier_input == "fusion":
            return classify(self, input_values, attention_mask, labels, output_hidden_states, return_dict)
        return_dict = self.config.return_dict if return_dict is None else return_dict
        scores = self.patch_scores(input_values, attention_mask)
        counts = scores.new_tensor(scores.shape[1]) if attention_mask is None else \
            attention_mask.to(scores.device, scores.dtype).sum(dim=1, keepdim=True)
        clip = (scores.double().sum(dim=1) / counts.double()).clamp(1e-12, 1 - 1e-12)
        logits = torch.logit(clip).to(scores.dtype)
        hidden_states = None
        if output_hidden_states:
            hidden_states = self.yamnet(input_values, attention_mask, output_hidden_states=True).hidden_states
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)
        return output if return_dict else output.to_tuple()
