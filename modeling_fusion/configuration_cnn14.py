"""Configuration of PANNs CNN14 with multilayer fusion."""

from transformers import PretrainedConfig

from .fusion import check_fusion_options

CNN14_BLOCKS = 6


class Cnn14FusionConfig(PretrainedConfig):
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
        fusion_layers = check_fusion_options(fusion_layers, 1, CNN14_BLOCKS, f"ConvBlock numbers 1-{CNN14_BLOCKS}",
                                             pooling, embedding_type, classifier_input)
        if len(block_channels) != CNN14_BLOCKS:
            raise ValueError(f"block_channels needs {CNN14_BLOCKS} entries, got {list(block_channels)}")
        self.num_mel_bins = num_mel_bins
        self.block_channels = list(block_channels)
        self.fusion_layers = fusion_layers
        self.pooling = pooling
        self.embedding_type = embedding_type
        self.classifier_input = classifier_input
        super().__init__(**kwargs)

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
