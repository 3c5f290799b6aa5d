"""Configuration of Google's YAMNet (MobileNetV1 on VGGish's front end) with multilayer fusion."""

from transformers import PretrainedConfig

from .fusion import check_fusion_options

# tensorflow/models research/audioset/yamnet/yamnet.py `_YAMNET_LAYER_DEFS`: layer 1 is a full 3x3 conv,
# layers 2-14 depthwise-separable (3x3 depthwise + 1x1 pointwise), each conv followed by folded
# BatchNorm and ReLU. Per layer: (stride, output channels); the stride applies to time and frequency.
LAYERS = ((2, 32), (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
          (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))
NUM_LAYERS = len(LAYERS)


class YAMNetFusionConfig(PretrainedConfig):
    """YAMNet after its log-mel front end, with the fusion recipe on top.

    Layers are numbered like `hidden_states`: 0 is the log-mel input, l = 1-14 the output (after
    ReLU) of YAMNet's `layer{l}`. Maps halve in time and frequency at layers 1, 3, 5, 7 and 13, so
    layers 13-14 are [1024, T / 32, 2] (320 ms frames) and every layer but the first gives
    C x F = 2048 values per frame (layer 1: 1024).

    Args:
        num_mel_bins: log-mel bands (64 in YAMNet).
        patch_frames: log-mel frames per patch the released model sees (96, 0.96 s).
        patch_hop_frames: frames between patches (48, 0.48 s): the input's patches overlap by half.
        fusion_layers: layers (1-14) fused into `last_hidden_state`, computed fully convolutionally
            over the clip's whole log-mel (see `YAMNetFusionModel`). The default, 6 + 14 (256 x 8 +
            1024 x 2 = 4096-d), was chosen on validation data only (reports/yamnet.md).
        pooling: temporal pooling of clip embeddings, "mean+max" (sum), "mean" or "max".
        embedding_type: "fusion" (the paper's method) or "plain": YAMNet's 1024-d embedding of each
            patch (global average of layer 14), pooled over the clip's patches with `pooling`.
        classifier_input: what the audio-classification head reads: "plain" (YAMNet's AudioSet
            dense layer on each patch's embedding, clip scores the mean of the patch scores) or
            "fusion" (a linear probe on the fused embedding).
    """

    model_type = "yamnet-fusion"
    # peak memory growth of a whole-clip pass per second of audio (CPU, float32, frames returned; measured,
    # 1 -> 5 minutes, the steeper of two slopes, benchmarks/results/long_clips.md): chunking runs longer clips in chunks
    whole_clip_bytes_per_second = 2.0 * 2**20

    def __init__(
        self,
        num_mel_bins=64,
        patch_frames=96,
        patch_hop_frames=48,
        fusion_layers=(6, 14),
        pooling="mean+max",
        embedding_type="fusion",
        classifier_input="plain",
        **kwargs,
    ):
        fusion_layers = check_fusion_options(fusion_layers, 1, NUM_LAYERS,
                                             f"layer numbers 1-{NUM_LAYERS} (YAMNet's layer1-14)",
                                             pooling, embedding_type, classifier_input)
        if num_mel_bins % 32:
            raise ValueError(f"num_mel_bins must be a multiple of 32 (five stride-2 layers), got {num_mel_bins}")
        if not 0 < patch_hop_frames <= patch_frames:
            raise ValueError(f"patch_hop_frames must be in 1-{patch_frames} (patch_frames), got {patch_hop_frames}")
        self.num_mel_bins = num_mel_bins
        self.patch_frames = patch_frames
        self.patch_hop_frames = patch_hop_frames
        self.fusion_layers = fusion_layers
        self.pooling = pooling
        self.embedding_type = embedding_type
        self.classifier_input = classifier_input
        super().__init__(**kwargs)

    @property
    def num_layers(self):
        return NUM_LAYERS

    @property
    def time_strides(self):
        """Input frames per time step of layers 1-14 (10, 20, ..., 320 ms)."""
        strides, total = [], 1
        for stride, _ in LAYERS:
            total *= stride
            strides.append(total)
        return strides

    @property
    def layer_channels(self):
        return [channels for _, channels in LAYERS]

    @property
    def layer_sizes(self):
        """Per-frame feature size C*F of layers 0-14; index 0 is the log-mel input."""
        return [self.num_mel_bins] + [
            channels * -(-self.num_mel_bins // stride) for channels, stride in zip(self.layer_channels, self.time_strides)
        ]

    @property
    def embedding_size(self):
        """Width of YAMNet's embedding (layer 14's channels, 1024)."""
        return LAYERS[-1][1]

    @property
    def hidden_size(self):
        """Size of `pooler_output`: fused layers' C*F summed, or the 1024-d plain embedding."""
        if self.embedding_type == "plain":
            return self.embedding_size
        return sum(self.layer_sizes[layer] for layer in self.fusion_layers)
