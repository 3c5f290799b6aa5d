"""Configuration of the Audio Spectrogram Transformer (AST) with multilayer fusion."""

from transformers import ASTConfig, PretrainedConfig

from .chunking import ChunkSpec
from .feature_extraction_ast import FRAME_LENGTH, FRAME_SHIFT
from .fusion import AST_POOLINGS, POOLINGS, FusionConfigMixin

# The ASTConfig fields that define the transformer; `ast_config` stores exactly these.
AST_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range", "layer_norm_eps", "patch_size",
    "qkv_bias", "frequency_stride", "time_stride", "max_length", "num_mel_bins",
)
CHUNK_CONTEXT_PATCHES = 20  # 2 s of context on each side of a window's kept patches


class AstFusionConfig(FusionConfigMixin, PretrainedConfig):
    """AST (Gong et al. 2021) on transformers' `ASTModel`, with the paper's block fusion on top.

    Args:
        ast_config: the transformer's `ASTConfig` fields as a plain dict (missing ones take ASTConfig's
            defaults, i.e. the AudioSet 10/10 model: 768-d, 12 blocks, 128 mel bins, 12 x 101 patch grid).
        fusion_layers: blocks (1-based) fused into the embedding; the paper's AST-Fusion#5#12 is [5, 12].
        pooling: clip embedding of each fused block. "cls+dist" (the paper): the block output after the
            final LayerNorm, [CLS] and distillation tokens averaged, 768-d per block. "mean+max", "mean" or
            "max": temporal pooling of the block's per-frame patch features, like the CNN recipe.
        embedding_type: "fusion" (the paper's method) or "plain" (AST's own 768-d embedding: block 12,
            final LayerNorm, (CLS+DIST)/2; the paper's baseline row).
        classifier_input: what the audio-classification head reads: "plain" (AST's AudioSet head) or
            "fusion" (a probe on the fused embedding).
        classifier_layer_norm_eps: eps of the head's LayerNorm (1e-5 in the original AST `mlp_head`;
            transformers' AST head uses the backbone's `layer_norm_eps`).
    """

    model_type = "ast-fusion"
    poolings = AST_POOLINGS
    family_title = "AST"
    # peak memory growth of a whole-clip pass per second of audio (CPU, float32, SDPA attention, frames returned;
    # the 1-minute growth / 60 s for the 768-d AudioSet model, an upper bound, benchmarks/results/long_clips.md):
    # chunking runs longer clips in windows
    whole_clip_bytes_per_second = 6.5 * 2**20

    def __init__(
        self,
        ast_config=None,
        fusion_layers=(5, 12),
        pooling="cls+dist",
        embedding_type="fusion",
        classifier_input="plain",
        classifier_layer_norm_eps=1e-5,
        **kwargs,
    ):
        ast_config = dict(ast_config or {})
        unknown = sorted(set(ast_config) - set(AST_FIELDS))
        if unknown:
            raise ValueError(f"ast_config has keys that are not ASTConfig architecture fields: {unknown}")
        defaults = ASTConfig(**ast_config)
        self.ast_config = {name: getattr(defaults, name) for name in AST_FIELDS}
        self.fusion_layers = fusion_layers
        self.pooling = pooling
        self.embedding_type = embedding_type
        self.classifier_input = classifier_input
        self.classifier_layer_norm_eps = classifier_layer_norm_eps
        super().__init__(**kwargs)

    def fusion_layer_range(self):
        return 1, self.num_layers, f"block numbers 1-{self.num_layers}"

    @property
    def num_layers(self):
        return self.ast_config["num_hidden_layers"]

    @property
    def patch_grid(self):
        """(frequency, time) patches of the checkpoint's position embeddings: (12, 101) for AudioSet 10/10."""
        ast = self.ast_config
        frequency = (ast["num_mel_bins"] - ast["patch_size"]) // ast["frequency_stride"] + 1
        time = (ast["max_length"] - ast["patch_size"]) // ast["time_stride"] + 1
        return frequency, time

    @property
    def layer_sizes(self):
        """Per-frame feature size of each hidden state (index 0 = embeddings): frequency patches x width."""
        return [self.patch_grid[0] * self.ast_config["hidden_size"]] * (self.num_layers + 1)

    @property
    def layer_embedding_size(self):
        """Size of one block's clip embedding under `pooling` (768 for "cls+dist")."""
        return self.ast_config["hidden_size"] if self.pooling == "cls+dist" else self.layer_sizes[-1]

    @property
    def hidden_size(self):
        """Size of `pooler_output`: the fused blocks' embeddings concatenated, or 768 for the plain one."""
        if self.embedding_type == "plain":
            return self.ast_config["hidden_size"]
        return self.layer_embedding_size * len(self.fusion_layers)

    def chunk_spec(self, feature_extractor):
        """How the fused frames sit on the waveform (`chunking.ChunkSpec`, samples at 16 kHz): `patch_chunk_spec`
        on the checkpoint's position grid (`patch_grid[1]` = 101 patches, 10.2 s), 2 s of context.

        An approximation (global self-attention; position embeddings used as they are): windows keep their
        middle 6.1 s; "cls+dist" clip embeddings are the frame-weighted mean of the windows' (30 s of noise,
        10 s chunks, full-size random model: frames 1.2e-2, clip embedding 1.8e-3 max relative;
        benchmarks/results/long_clips_differences.md).
        """
        from_frames = self.pooling in POOLINGS
        return patch_chunk_spec(self.ast_config["patch_size"], self.ast_config["time_stride"], self.patch_grid[1],
                                CHUNK_CONTEXT_PATCHES, self.embedding_type == "fusion" and from_frames, from_frames)


def patch_chunk_spec(patch_size, time_stride, window_patches, context_patches, pooled_from_frames, layers_from_frames):
    """`ChunkSpec` of AST time patches on the waveform (AstFusionConfig and encoder fusion of transformers' AST).

    Kaldi fbank frames of `FRAME_LENGTH` (400) samples every `FRAME_SHIFT` (160, 10 ms at 16 kHz), not centred;
    a fused frame is one time patch of `patch_size` frames every `time_stride` frames (a unit), centred on its
    frames' centre. Long clips run in windows of `window_patches` (the position grid) with `context_patches` on
    each side (the first and last windows take more on their inner side). Never exact (global attention).
    """

    def num_frames(n):
        return max((1 + (n - FRAME_LENGTH) // FRAME_SHIFT - patch_size) // time_stride + 1, 0)

    return ChunkSpec(
        unit_samples=time_stride * FRAME_SHIFT, frames_per_unit=1, context_units=context_patches,
        tail_samples=FRAME_LENGTH + (patch_size - 1) * FRAME_SHIFT - time_stride * FRAME_SHIFT,
        window_units=window_patches, first_centre=(patch_size - 1) / 2 * FRAME_SHIFT + (FRAME_LENGTH - 1) / 2,
        num_frames=num_frames, exact=False, pooled_from_frames=pooled_from_frames,
        layers_from_frames=layers_from_frames)
