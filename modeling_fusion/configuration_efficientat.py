"""Configuration of EfficientAT's MobileNetV3 (Schmid et al., ICASSP 2023) with multilayer fusion."""

from transformers import PretrainedConfig

from .chunking import ChunkSpec
from .fusion import FUSION_OPTIONS, FusionConfigMixin

# MobileNetV3-Large inverted-residual blocks features.1-15 at width 1.0 (Howard et al. 2019), which
# EfficientAT scales by the width multiplier: (kernel, in, expanded, out, squeeze-excitation, hardswish, stride).
BLOCKS = (
    (3, 16, 16, 16, False, False, 1),
    (3, 16, 64, 24, False, False, 2),
    (3, 24, 72, 24, False, False, 1),
    (5, 24, 72, 40, True, False, 2),
    (5, 40, 120, 40, True, False, 1),
    (5, 40, 120, 40, True, False, 1),
    (3, 40, 240, 80, False, True, 2),
    (3, 80, 200, 80, False, True, 1),
    (3, 80, 184, 80, False, True, 1),
    (3, 80, 184, 80, False, True, 1),
    (3, 80, 480, 112, True, True, 1),
    (3, 112, 672, 112, True, True, 1),
    (5, 112, 672, 160, True, True, 2),
    (5, 160, 960, 160, True, True, 1),
    (5, 160, 960, 160, True, True, 1),
)
STEM_CHANNELS = 16
HEAD_CHANNELS = 1280
NUM_STAGES = len(BLOCKS) + 2  # features.0 (stem), features.1-15 (blocks), features.16 (1x1 conv)
CHUNK_CONTEXT_UNITS = 10  # 3.2 s on each side of a chunk


def round_channels(channels):
    """MobileNet channel rounding: nearest multiple of 8 (at least 8), never more than 10% below `channels`."""
    rounded = max(8, int(channels + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * channels else rounded


class EfficientATFusionConfig(FusionConfigMixin, PretrainedConfig):
    """EfficientAT MobileNetV3 body after the log-mel front end, with the fusion recipe on top.

    Layers are numbered like `hidden_states`: layer 0 is the log-mel input and layer k + 1 is the
    upstream stage `features.k` (k = 0 stem, 1-15 inverted-residual blocks, 16 the 1x1 conv to
    6 x the last block's channels), so there are 17 layers.

    Args:
        num_mel_bins: mel bins of the input (128 in every EfficientAT checkpoint).
        width_mult: channel width multiplier of MobileNetV3-Large (mn04 = 0.4, mn10 = 1.0, mn40 = 4.0).
        fusion_layers: layers (1-17, i.e. features.0-16) fused into `last_hidden_state`. The default,
            12 + 14 (features.11 + features.13, 384 + 256 = 640-d), was chosen for mn04_as on validation
            data only (reports/efficientat_mn04.md).
        pooling: temporal pooling of the clip embedding, "mean+max" (sum), "mean" or "max".
        embedding_type: "fusion" (the paper's method) or "plain" (EfficientAT's embedding: the
            global average of features.16).
        classifier_input: what the audio-classification head reads: "plain" (EfficientAT's AudioSet
            MLP head on the plain embedding) or "fusion" (a linear probe on the fused embedding).
        classifier_dropout: dropout between the two linear layers of the MLP head.
    """

    model_type = "efficientat-fusion"
    checked_options = FUSION_OPTIONS + ("width_mult", "num_mel_bins")
    family_title = "EfficientAT"
    @property
    def whole_clip_bytes_per_second(self):
        """Peak memory growth of a whole-clip pass per second of audio (CPU, float32, frames returned): 2.3 MiB
        measured for mn04 (5 -> 20 minutes, benchmarks/results/long_clips.md), scaled with the width (every
        activation's channels are); chunking runs longer clips in chunks."""
        return 2.3 * 2**20 * self.width_mult / 0.4

    def __init__(
        self,
        num_mel_bins=128,
        width_mult=0.4,
        fusion_layers=(12, 14),
        pooling="mean+max",
        embedding_type="fusion",
        classifier_input="plain",
        classifier_dropout=0.2,
        **kwargs,
    ):
        self.num_mel_bins = num_mel_bins
        self.width_mult = width_mult
        self.fusion_layers = fusion_layers
        self.pooling = pooling
        self.embedding_type = embedding_type
        self.classifier_input = classifier_input
        self.classifier_dropout = classifier_dropout
        super().__init__(**kwargs)

    def fusion_layer_range(self):
        return 1, NUM_STAGES, f"layer numbers 1-{NUM_STAGES} (layer k + 1 = features.k)"

    def check_options(self, options):
        if not options["width_mult"] > 0:
            raise ValueError(f"width_mult must be positive (e.g. 0.4 for mn04), got {options['width_mult']}")
        if options["num_mel_bins"] % 32:
            raise ValueError(f"num_mel_bins must be a multiple of 32 (five stride-2 stages), got "
                             f"{options['num_mel_bins']}")
        options["width_mult"] = float(options["width_mult"])
        return super().check_options(options)

    def scaled(self, channels):
        return round_channels(channels * self.width_mult)

    @property
    def stage_channels(self):
        """Output channels of features.0-16."""
        blocks = [self.scaled(block[3]) for block in BLOCKS]
        return [self.scaled(STEM_CHANNELS)] + blocks + [6 * blocks[-1]]

    @property
    def time_strides(self):
        """Input frames per output frame of features.0-16 (the stride applies to frequency too)."""
        strides = [2]  # the stem conv has stride 2
        for block in BLOCKS:
            strides.append(strides[-1] * block[6])
        return strides + [strides[-1]]  # features.16 is a 1x1 conv

    @property
    def layer_sizes(self):
        """Per-frame feature size C*F of each layer, index 0 = the log-mel input, index k + 1 = features.k."""
        return [self.num_mel_bins] + [
            channels * (self.num_mel_bins // stride) for channels, stride in zip(self.stage_channels, self.time_strides)
        ]

    @property
    def embedding_size(self):
        """Width of the plain embedding (features.16's channels)."""
        return self.stage_channels[-1]

    @property
    def head_hidden_size(self):
        """Width of the AudioSet MLP head's hidden layer (1280 scaled: 512 for mn04)."""
        return self.scaled(HEAD_CHANNELS)

    @property
    def hidden_size(self):
        """Size of `pooler_output`: fused layers' C*F summed, or the plain embedding's width."""
        if self.embedding_type == "plain":
            return self.embedding_size
        return sum(self.layer_sizes[layer] for layer in self.fusion_layers)

    def chunk_spec(self, feature_extractor):
        """How the fused frames sit on the waveform (`chunking.ChunkSpec`, samples at the extractor's rate).

        Input frame t (pre-emphasis, centred window) is centred on sample t * hop (`feature_extractor.hop_length`,
        320 = 10 ms at 32 kHz); fused frames are at the last layer's rate (`time_strides[-1]` = 32 input frames,
        320 ms), and a strided conv with a centred kernel centres frame j on input frame 32 j. Frame counts
        round up. An approximation: the squeeze-excitation gates average over the whole input, so every frame
        depends on the whole clip, and a chunk sees its own (chunk + 3.2 s context) average (30 s of noise, 10 s
        chunks, full-size random model: frames 1.2e-4, clip embedding 6.9e-5 max relative; the real mn04 weights on
        real audio differ far more, 14-62% at 30 s chunks: benchmarks/results/long_clips_differences*.md).
        """
        hop, stride = feature_extractor.hop_length, self.time_strides[-1]
        return ChunkSpec(
            unit_samples=stride * hop, frames_per_unit=1, context_units=CHUNK_CONTEXT_UNITS,
            tail_samples=max(feature_extractor.n_fft // 2 - hop, 0), window_units=None, first_centre=0.0,
            num_frames=lambda n: -(-(1 + (n - 1) // hop) // stride), exact=False,
            pooled_from_frames=self.embedding_type == "fusion", layers_from_frames=True)
