"""Configuration of VGGish with multilayer fusion."""

from transformers import PretrainedConfig

from .chunking import ChunkSpec
from .fusion import FUSION_OPTIONS, FusionConfigMixin

# The paper's layer numbers: "#n" is child n-1 of VGGish's conv stack (children 0-15) followed by its
# FC stack (children 16-21). Per layer: (name, channels or width, mel bins, time stride). Conv layers
# give a map [C, 96 / stride, F] per 0.96 s example; FC layers (F = 1) one vector per example.
VGGISH_LAYERS = (
    ("conv1", 64, 64, 1), ("relu1", 64, 64, 1), ("pool1", 64, 32, 2),                        # 1-3
    ("conv2", 128, 32, 2), ("relu2", 128, 32, 2), ("pool2", 128, 16, 4),                     # 4-6
    ("conv3_1", 256, 16, 4), ("relu3_1", 256, 16, 4),                                        # 7-8
    ("conv3_2", 256, 16, 4), ("relu3_2", 256, 16, 4), ("pool3", 256, 8, 8),                  # 9-11
    ("conv4_1", 512, 8, 8), ("relu4_1", 512, 8, 8),                                          # 12-13
    ("conv4_2", 512, 8, 8), ("relu4_2", 512, 8, 8), ("pool4", 512, 4, 16),                   # 14-16
    ("fc1_1", 4096, 1, None), ("relu_fc1_1", 4096, 1, None),                                 # 17-18
    ("fc1_2", 4096, 1, None), ("relu_fc1_2", 4096, 1, None),                                 # 19-20
    ("fc2", 128, 1, None), ("relu_fc2", 128, 1, None),                                       # 21-22
)
# 21 is the 128-d embedding of current TF VGGish (pre-activation); 22 adds the legacy ReLU that
# torchvggish and the tcvrick port (used by the paper) still apply.
NUM_LAYERS = len(VGGISH_LAYERS)
PLAIN_LAYER = 21
EXAMPLE_FRAMES = 96
FRAMES_PER_EXAMPLE = 6  # fused frames per 0.96 s example: 160 ms each


class VGGishFusionConfig(FusionConfigMixin, PretrainedConfig):
    """VGGish (Hershey et al. 2017) after the log-mel front end, with the fusion recipe on top.

    Args:
        num_mel_bins: log-mel bins of each 96-frame example (64 in VGGish).
        fusion_layers: the paper's layer numbers 1-22 ("#n", see VGGISH_LAYERS) fused into
            `last_hidden_state`; the paper's VGGish-Fusion#10#15 is [10, 15] (8192-d). [22] is the
            paper's "VGGish" baseline row (post-ReLU 128-d, mean+max over examples).
        pooling: temporal pooling of the clip embedding, "mean+max" (sum), "mean" or "max".
        embedding_type: "fusion" (the paper's method) or "plain": the original 128-d embedding of
            each example (fc2 without the legacy final ReLU), pooled over the clip's examples.
        postprocess: apply the released PCA + whitening and 8-bit quantisation to the plain
            embedding (needs the PCA parameters, stored in the weights as buffers).
        classifier_input: what `VGGishForAudioClassification`'s linear probe reads.
    """

    model_type = "vggish-fusion"
    checked_options = FUSION_OPTIONS + ("num_mel_bins",)
    family_title = "VGGish"
    # peak memory growth of a whole-clip pass per second of audio (CPU, float32, frames returned; measured,
    # 5 -> 20 minutes, benchmarks/results/long_clips.md): chunking runs longer clips in chunks
    whole_clip_bytes_per_second = 1.0 * 2**20

    def __init__(
        self,
        num_mel_bins=64,
        fusion_layers=(10, 15),
        pooling="mean+max",
        embedding_type="fusion",
        postprocess=False,
        classifier_input="fusion",
        **kwargs,
    ):
        self.num_mel_bins = num_mel_bins
        self.fusion_layers = fusion_layers
        self.pooling = pooling
        self.embedding_type = embedding_type
        self.postprocess = bool(postprocess)
        self.classifier_input = classifier_input
        super().__init__(**kwargs)

    def fusion_layer_range(self):
        return 1, NUM_LAYERS, f"the paper's layer numbers 1-{NUM_LAYERS}"

    def check_options(self, options):
        if options["num_mel_bins"] != 64:
            raise ValueError(f"VGGish's FC stack needs 64 mel bins, got num_mel_bins={options['num_mel_bins']}")
        return super().check_options(options)

    @property
    def num_layers(self):
        return NUM_LAYERS

    @property
    def time_strides(self):
        """Input frames per time step of layers 1-22; None for FC layers (one vector per example)."""
        return [stride for _, _, _, stride in VGGISH_LAYERS]

    @property
    def layer_sizes(self):
        """Per-frame feature size C*F of layers 0-22; index 0 is the log-mel input."""
        return [self.num_mel_bins] + [width * freqs for _, width, freqs, _ in VGGISH_LAYERS]

    @property
    def hidden_size(self):
        """Size of `pooler_output`: fused layers' sizes summed, or 128 for the plain embedding."""
        if self.embedding_type == "plain":
            return self.layer_sizes[PLAIN_LAYER]
        return sum(self.layer_sizes[layer] for layer in self.fusion_layers)

    def chunk_spec(self, feature_extractor):
        """How the fused frames sit on the waveform (`chunking.ChunkSpec`, samples at 16 kHz).

        Log-mel frames of `window_length` (400) samples every `hop_length` (160, 10 ms), not centred; examples
        of `example_frames` (96, 0.96 s) every `example_hop_frames`; a fused frame is `FRAMES_PER_EXAMPLE` (6)
        per example (pool4's rate: 16 input frames, 160 ms), or one per example for the plain embedding, centred
        on its frames' centre. A unit is one example hop. Exact when examples do not overlap (each is encoded
        on its own; 30 s of noise, 10 s chunks, full-size random model: frames 0, clip embedding 1.2e-7 max
        relative; benchmarks/results/long_clips_differences.md).
        """
        extractor = feature_extractor
        hop, example_frames, example_hop = extractor.hop_length, extractor.example_frames, extractor.example_hop_frames
        per_example = 1 if self.embedding_type == "plain" else FRAMES_PER_EXAMPLE
        span = example_frames // per_example  # input frames per fused frame
        return ChunkSpec(
            unit_samples=example_hop * hop, frames_per_unit=per_example,
            context_units=-(-example_frames // example_hop) - 1,  # overlapping examples need their neighbours' audio
            tail_samples=extractor.example_samples - example_hop * hop, window_units=None,
            first_centre=(span - 1) / 2 * hop + extractor.window_length / 2,
            num_frames=lambda n: extractor.num_examples(n) * per_example, exact=example_hop >= example_frames,
            pooled_from_frames=True, layers_from_frames=True,
            layer_frames_per_unit=FRAMES_PER_EXAMPLE * example_hop // example_frames)
