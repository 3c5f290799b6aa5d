"""Configuration of Google's YAMNet (MobileNetV1 on VGGish's front end) with multilayer fusion."""

import math

from transformers import PretrainedConfig

from .chunking import ChunkSpec
from .fusion import FUSION_OPTIONS, FusionConfigMixin

# tensorflow/models research/audioset/yamnet/yamnet.py `_YAMNET_LAYER_DEFS`: layer 1 is a full 3x3 conv,
# layers 2-14 depthwise-separable (3x3 depthwise + 1x1 pointwise), each conv followed by folded
# BatchNorm and ReLU. Per layer: (stride, output channels); the stride applies to time and frequency.
LAYERS = ((2, 32), (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
          (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))
NUM_LAYERS = len(LAYERS)


class YAMNetFusionConfig(FusionConfigMixin, PretrainedConfig):
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
            1024 x 2 = 4096-d), was chosen on validation data only by an earlier study; today's
            `fusion-eval --select-fusion` choice and every number are in reports/yamnet/.
        pooling: temporal pooling of clip embeddings, "mean+max" (sum), "mean" or "max".
        embedding_type: "fusion" (the paper's method) or "plain": YAMNet's 1024-d embedding of each
            patch (global average of layer 14), pooled over the clip's patches with `pooling`.
        classifier_input: what the audio-classification head reads: "plain" (YAMNet's AudioSet
            dense layer on each patch's embedding, clip scores the mean of the patch scores) or
            "fusion" (a linear probe on the fused embedding).
    """

    model_type = "yamnet-fusion"
    checked_options = FUSION_OPTIONS + ("num_mel_bins", "patch_frames", "patch_hop_frames")
    family_title = "YAMNet"
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
        self.num_mel_bins = num_mel_bins
        self.patch_frames = patch_frames
        self.patch_hop_frames = patch_hop_frames
        self.fusion_layers = fusion_layers
        self.pooling = pooling
        self.embedding_type = embedding_type
        self.classifier_input = classifier_input
        super().__init__(**kwargs)

    def fusion_layer_range(self):
        return 1, NUM_LAYERS, f"layer numbers 1-{NUM_LAYERS} (YAMNet's layer1-14)"

    def check_options(self, options):
        if options["num_mel_bins"] % 32:
            raise ValueError(f"num_mel_bins must be a multiple of 32 (five stride-2 layers), got "
                             f"{options['num_mel_bins']}")
        frames, hop = options["patch_frames"], options["patch_hop_frames"]
        if not 0 < hop <= frames:
            raise ValueError(f"patch_hop_frames must be in 1-{frames} (patch_frames), got {hop}")
        return super().check_options(options)

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

    @property
    def receptive_field(self):
        """Input frames (10 ms) that one layer-14 frame depends on: 315. Every layer is a 3-tap conv in time
        (2 steps, a step being the layer's input stride in input frames)."""
        return 1 + sum(2 * step for step in [1] + self.time_strides[:-1])

    def chunk_spec(self, feature_extractor):
        """How the fused frames sit on the waveform (`chunking.ChunkSpec`, samples at 16 kHz).

        Log-mel frames of `window_length` (400) samples every `hop_length` (160, 10 ms), not centred, computed
        over the whole clip; fused frames are at layer 14's rate (`time_strides[-1]` = 32 input frames,
        320 ms), centred on their 32 frames; plain embeddings are one per patch. TF "SAME" padding: a stride-2
        layer pads its input on the left only when the input's length is odd; layer 13's input has 3 (E + 1)
        frames for E patches, so its frame grid shifts by 160 ms with the parity of E. Chunks therefore start
        on multiples of two patch hops and a fused frame (96 frames, 0.96 s) and run with a length congruent
        to the clip's modulo that (`length_period`): same padding, same grid, same end, same patches. The
        context (4 units, 3.84 s; plain: 5) exceeds `receptive_field`. Exact (30 s of noise, 10 s chunks,
        full-size random model: frames 0, clip embedding 1e-7 max relative; plain per-patch embeddings 7e-7;
        benchmarks/results/long_clips_differences.md).
        """
        extractor, patch_hop, stride = feature_extractor, self.patch_hop_frames, self.time_strides[-1]
        unit_frames = math.lcm(2 * patch_hop, stride)
        plain = self.embedding_type == "plain"
        span, per_unit = (self.patch_frames, unit_frames // patch_hop) if plain else (stride, unit_frames // stride)
        hop = extractor.hop_length
        return ChunkSpec(
            unit_samples=unit_frames * hop, frames_per_unit=per_unit,
            context_units=-(-(self.receptive_field + span) // unit_frames),
            tail_samples=extractor.window_length - hop, window_units=None,
            first_centre=(span - 1) / 2 * hop + extractor.window_length / 2,
            num_frames=lambda n: extractor.num_examples(n) if plain else  # log-mel of E patches / 32, rounded up
            -(-(patch_hop * (extractor.num_examples(n) - 1) + self.patch_frames) // stride),
            exact=True, pooled_from_frames=True, layers_from_frames=True,
            layer_frames_per_unit=unit_frames // stride, length_period=unit_frames * hop)
