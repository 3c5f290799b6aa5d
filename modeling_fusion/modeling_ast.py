"""AST as Hugging Face models: transformers' `ASTModel` run on whole clips, with block fusion and the AudioSet head."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ASTConfig, ASTModel

from .configuration_ast import AstFusionConfig
from .fusion import FusionModelMixin, FusionPreTrainedModel, frame_features
from .classification import classify


def adapt_position_embeddings(position_embeddings, grid, time_patches):
    """Position embeddings of a (frequency, time) `grid` checkpoint for an input of `time_patches` patches.

    As the original AST code adapts its AudioSet model: the two special-token rows stay; the patch grid
    is cut from the centre along time (columns t0 // 2 - t // 2 onwards) when shorter, and bilinearly
    interpolated (align_corners=False) to (frequency, t) when longer. [1, 2 + f * t0, D] -> [1, 2 + f * t, D].
    """
    frequency, time = grid
    if time_patches == time:
        return position_embeddings
    width = position_embeddings.shape[-1]
    patches = position_embeddings[:, 2:].reshape(1, frequency, time, width).permute(0, 3, 1, 2)  # [1, D, f, t0]
    if time_patches < time:
        start = time // 2 - time_patches // 2
        patches = patches[..., start : start + time_patches]
    else:
        patches = F.interpolate(patches, size=(frequency, time_patches), mode="bilinear", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, frequency * time_patches, width)
    return torch.cat([position_embeddings[:, :2], patches], dim=1)


class AstClassifierHead(nn.Module):
    """AST's `mlp_head`: LayerNorm then Linear."""

    def __init__(self, width, num_labels, eps):
        super().__init__()
        self.layernorm = nn.LayerNorm(width, eps=eps)
        self.dense = nn.Linear(width, num_labels)

    def forward(self, x):
        return self.dense(self.layernorm(x))


class AstFusionPreTrainedModel(FusionPreTrainedModel):
    config_class = AstFusionConfig
    base_model_prefix = "ast_fusion"
    _supports_sdpa = True


class AstFusionModel(FusionModelMixin, AstFusionPreTrainedModel):
    """transformers' `ASTModel` on normalised fbank `input_values` [B, T, 128], each clip at its own length.

    A clip of T frames gives t = (T - 16) // 10 + 1 time patches (one per 10 frames = 100 ms; each patch
    spans 16 frames = 175 ms of audio) and the checkpoint's 12 x 101 position embeddings are adapted to
    12 x t (`adapt_position_embeddings`). Clips of different lengths run as separate sub-batches, so a
    batch gives each clip exactly its single-clip result.

    Outputs (`AudioFusionOutput`), every hidden state taken after the shared final LayerNorm:
        pooler_output: fusion: the `fusion_layers` blocks' embeddings concatenated (blocks 5 + 12 with
            (CLS+DIST)/2: 1536-d, the paper's AST-Fusion#5#12); plain: block 12's (CLS+DIST)/2, 768-d,
            identical to `ASTModel`'s pooler_output.
        last_hidden_state: [B, t, D] per-frame features from the patch tokens of the same blocks: the
            12 x t grid regrouped per time step, flattened channel-major (index c * 12 + f) as in the CNN
            recipe; 12 * 768 = 9216 per block, one frame per 100 ms.
        hidden_states: with `output_hidden_states`, 13 per-frame features [B, t, 9216]: index 0 the
            embeddings (patches + position), index l block l.
        pooled_hidden_states: with `output_hidden_states`, 13 clip embeddings [B, 768], same indexing.
        plain_embedding: with `output_plain_embedding`, block 12's (CLS+DIST)/2.
        frame_mask: [B, t] True for real frames when clips differ in length.
    Blocks after the last one needed are not computed.
    """

    min_audio = "0.175 s of audio"

    def __init__(self, config):
        super().__init__(config)
        attention = self.config._attn_implementation or "sdpa"
        self.ast = ASTModel(ASTConfig(**config.ast_config, attn_implementation=attention))
        self.post_init()

    @property
    def min_frames(self):
        return self.config.ast_config["patch_size"]  # one time patch

    def check_inputs(self, input_values, attention_mask):
        """input_values [B, T, num_mel_bins] normalised fbank; attention_mask [B, T] marks real frames."""
        mel_bins = self.config.ast_config["num_mel_bins"]
        if input_values.ndim != 3 or input_values.shape[-1] != mel_bins:
            raise ValueError(
                f"input_values must be a normalised fbank [batch, frames, {mel_bins}], got "
                f"{tuple(input_values.shape)}; compute it with AstFusionFeatureExtractor."
            )

    def embed(self, input_values):
        """[b, T, mel] -> tokens [b, 2 + f * t, D] with position embeddings adapted to t time patches."""
        embeddings = self.ast.embeddings
        patches = embeddings.patch_embeddings(input_values)
        ast = self.config.ast_config
        time_patches = (input_values.shape[1] - ast["patch_size"]) // ast["time_stride"] + 1
        batch = input_values.shape[0]
        tokens = torch.cat(
            [embeddings.cls_token.expand(batch, -1, -1), embeddings.distillation_token.expand(batch, -1, -1), patches],
            dim=1,
        )
        positions = adapt_position_embeddings(embeddings.position_embeddings, self.config.patch_grid, time_patches)
        return embeddings.dropout(tokens + positions)

    def layer_outputs(self, input_values, layers):
        """Maps {l: [b, D, t, f]} (the patch tokens of block l, index 0 the embeddings, after the shared final
        LayerNorm, as a time x frequency grid) and clip embeddings {l: (CLS + DIST) / 2} for `layers`."""
        keep, maps, tokens = set(layers), {}, {}
        frequency = self.config.patch_grid[0]
        hidden = self.embed(input_values)
        for index in range(max(layers) + 1):
            if index:
                hidden = self.ast.layers[index - 1](hidden)
            if index in keep:
                normed = self.ast.layernorm(hidden)
                patches = normed[:, 2:]  # [b, f * t, D], frequency-major
                maps[index] = patches.reshape(patches.shape[0], frequency, -1, patches.shape[-1]).permute(0, 3, 2, 1)
                tokens[index] = (normed[:, 0] + normed[:, 1]) / 2
        return maps, tokens

    def plain_outputs(self, input_values, maps, layer_embeddings):
        """AST's own embedding: the last block's (CLS + DIST) / 2; frames: its patch tokens per time step."""
        last = self.config.num_layers
        return frame_features(maps[last], 1), layer_embeddings[last]


class AstFusionForAudioClassification(AstFusionPreTrainedModel):
    """AST with a classifier: AST's AudioSet head (LayerNorm + Linear) on the plain embedding (527 labels,
    sigmoid), or a linear probe on the fused embedding (`config.classifier_input == "fusion"`). Returns
    logits; `labels` give a loss."""

    def __init__(self, config):
        super().__init__(config)
        self.ast_fusion = AstFusionModel(config)
        if config.classifier_input == "plain":
            width = config.ast_config["hidden_size"]
            self.classifier = AstClassifierHead(width, config.num_labels, config.classifier_layer_norm_eps)
        else:
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_values, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None):
        return classify(self, input_values, attention_mask, labels, output_hidden_states, return_dict)
