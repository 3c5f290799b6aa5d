"""Configuration of PANNs CNN14 with multilayer fusion."""

from transformers import PretrainedConfig

from .chunking import ChunkSpec
from .fusion import FUSION_OPTIONS, FusionConfigMixin

CNN14_BLOCKS = 6
MIN_FRAMES = 32  # five 2x2 average pools need 32 log-mel frames (about 0.31 s)
CHUNK_CONTEXT_UNITS = 8  # 8 x 32 = 256 input frames > receptive_field // 2 (142) + one fused frame (32) + 2


class Cnn14FusionConfig(FusionConfigMixin, PretrainedConfig):
    """CNN14 (Kong et al. 2020) body after the log-mel front end, with the fusion recipe on top.

    Args:
        num_mel_bins: log-mel bins of the input (64 in every PANNs checkpoint).
        block_channels: output channels of ConvBlocks 1-6.
        fusion_layers: ConvBlocks (1-6) fused into `last_hidden_state`; the paper uses [3, 6].
        pooling: temporal pooling of the clip embedding, "mean+max" (sum), "mean" or "max".
        embedding_type: "fusion" (the paper's method) or "plain" (PANNs' 2048-d fc1 embedding, the
            paper's baseline row).
        classifier_input: what the audio-classification head reads: "plain" (the AudioSet head of
            PANNs, on fc1) or "fusion" (a linear probe on the fused embedding).
    """

    model_type = "cnn14-fusion"
    checked_options = FUSION_OPTIONS + ("block_channels",)
    family_title = "CNN14"
    # peak memory growth of a whole-clip pass per second of audio (CPU, float32, frames returned; measured for the
    # default widths, 1 -> 5 minutes, benchmarks/results/long_clips.md): chunking runs longer clips in chunks
    whole_clip_bytes_per_second = 4.8 * 2**20

    def __init__(
        self,
        num_mel_bins=64,
        block_channels=(64, 128, 256, 512, 1024, 2048),
        fusion_layers=(3, 6),
        pooling="mean+max",
        embedding_type="fusion",
        classifier_input="plain",
        **kwargs,
    ):
        self.num_mel_bins = num_mel_bins
        self.block_channels = block_channels
        self.fusion_layers = fusion_layers
        self.pooling = pooling
        self.embedding_type = embedding_type
        self.classifier_input = classifier_input
        super().__init__(**kwargs)

    def fusion_layer_range(self):
        return 1, CNN14_BLOCKS, f"ConvBlock numbers 1-{CNN14_BLOCKS}"

    def check_options(self, options):
        if len(options["block_channels"]) != CNN14_BLOCKS:
            raise ValueError(f"block_channels needs {CNN14_BLOCKS} entries, got {list(options['block_channels'])}")
        options["block_channels"] = list(options["block_channels"])
        return super().check_options(options)

    @property
    def time_strides(self):
        """Input frames per output frame of each ConvBlock (blocks 1-5 halve time, block 6 keeps it)."""
        return [2, 4, 8, 16, 32, 32]

    @property
    def layer_sizes(self):
        """Per-frame feature size C*F of each ConvBlock, index 0 = the bn0-normalised log-mel."""
        freqs = [self.num_mel_bins // min(stride, 32) for stride in self.time_strides]
        return [self.num_mel_bins] + [c * f for c, f in zip(self.block_channels, freqs)]

    @property
    def hidden_size(self):
        """Size of `pooler_output`: fused layers' C*F summed, or fc1's width for the plain embedding."""
        if self.embedding_type == "plain":
            return self.block_channels[-1]
        return sum(self.layer_sizes[layer] for layer in self.fusion_layers)

    @property
    def receptive_field(self):
        """Input frames (10 ms at 16 kHz) that one ConvBlock 6 frame depends on: 284. Each block runs two 3x3
        convolutions (2 steps each) and a 2x2 average pool (1 step; block 6 pools 1x1), a step being the
        block's input stride in input frames."""
        field, step = 1, 1
        for stride in self.time_strides:
            field += 4 * step + (stride // step - 1) * step
            step = stride
        return field

    def chunk_spec(self, feature_extractor):
        """How the fused frames sit on the waveform (`chunking.ChunkSpec`, samples at the extractor's rate).

        Input frame t is centred on sample t * hop (`feature_extractor.hop_length`: 160 at 16 kHz, 320 at
        32 kHz; centred, reflect-padded STFT); fused frames are at the last block's rate (`time_strides[-1]`
        = 32 input frames, 320 ms) and, made by average pools, centre on the mean of their 32 input frames.
        Exact: no operation spans the input and the context (`CHUNK_CONTEXT_UNITS`) exceeds the receptive
        field's half-width, so chunked frames equal a whole-clip pass (30 s of noise, 10 s chunks, full-size
        random model: frames 0, clip embedding 1.3e-7 max relative, the float64 running mean;
        benchmarks/results/long_clips_differences.md).
        """
        hop, stride = feature_extractor.hop_length, self.time_strides[-1]
        return ChunkSpec(
            unit_samples=stride * hop, frames_per_unit=1, context_units=CHUNK_CONTEXT_UNITS,
            tail_samples=max(feature_extractor.n_fft // 2 - hop, 0), window_units=None,
            first_centre=(stride - 1) / 2 * hop, num_frames=lambda n: (1 + n // hop) // stride, exact=True,
            pooled_from_frames=self.embedding_type == "fusion", layers_from_frames=True)
