"""VGGish as Hugging Face models: multilayer fusion embeddings and a linear-probe head."""

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_vggish import EXAMPLE_FRAMES, FRAMES_PER_EXAMPLE, NUM_LAYERS, PLAIN_LAYER, VGGishFusionConfig
from .fusion import FusionModelMixin, FusionPreTrainedModel, frame_features, fusion_outputs, pool_frames
from .classification import classify

CONV_STACK = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")  # VGG configuration A without its fifth group
EXAMPLES_PER_CHUNK = 32  # on CPU, see VGGishFusionModel._example_frames
EXAMPLES_PER_CHUNK_ACCELERATOR = 512


class VGGishInputConv(nn.Conv2d):
    """conv1 (1 -> 64 channels, 3x3, padding 1) as one matrix product over 3x3 patches.

    [N, 1, T, F] -> [N, 64, T, F] laid out channels-last (NHWC), which the rest of the stack uses:
    a library convolution with a single input channel returns NCHW, and converting that costs more
    than the convolution itself. Same weights and keys as nn.Conv2d.
    """

    def forward(self, x):
        batch, _, frames, bins = x.shape
        patches = F.pad(x[:, 0], (1, 1, 1, 1)).unfold(1, 3, 1).unfold(2, 3, 1)  # [N, T, F, 3, 3]
        out = torch.addmm(self.bias, patches.reshape(-1, 9), self.weight.reshape(self.out_channels, 9).T)
        return out.view(batch, frames, bins, self.out_channels).permute(0, 3, 1, 2)


class VGGishPostprocessor(nn.Module):
    """The released PCA + whitening and 8-bit quantisation of [..., 128] embeddings.

    y = E (x - mu), clipped to [-2, 2] and mapped to 0-255 with truncation, as TF's
    vggish_postprocess (torchvggish rounds instead). Returns floats holding the integers 0-255.
    """

    def __init__(self, size=128):
        super().__init__()
        self.register_buffer("pca_eigen_vectors", torch.eye(size))
        self.register_buffer("pca_means", torch.zeros(size))

    def forward(self, embeddings):
        centred = embeddings.double() - self.pca_means.double()
        whitened = centred @ self.pca_eigen_vectors.double().T
        return torch.floor((whitened.clamp(-2.0, 2.0) + 2.0) * (255.0 / 4.0)).to(embeddings.dtype)


class VGGishPreTrainedModel(FusionPreTrainedModel):
    config_class = VGGishFusionConfig
    base_model_prefix = "vggish"

    def _init_weights(self, module):
        if isinstance(module, VGGishPostprocessor):
            nn.init.eye_(module.pca_eigen_vectors)
            nn.init.zeros_(module.pca_means)
        else:
            super()._init_weights(module)


class VGGishFusionModel(FusionModelMixin, VGGishPreTrainedModel):
    """VGGish on log-mel examples `input_values` [B, E, 96, 64] -> fused per-frame features and clip embedding.

    Layer "#n" of the paper is child n-1 of `features` (children 0-15) followed by `fc` (16-21). A conv
    layer's map is max-pooled in time to 6 frames per 0.96 s example (160 ms) and flattened
    channel-major; an FC layer's vector is repeated over the example's 6 frames. A clip's examples are
    joined in time order, so `last_hidden_state` is [B, 6 E, D] (4096 + 4096 = 8192-d for #10 #15);
    `hidden_states[n]` is layer #n in that form, index 0 the log-mel input, and
    `pooled_hidden_states[n]` its clip embedding (the paper's single-layer probe). Layers after the last one
    needed are not computed. Each example is encoded on its own, so padded examples (attention_mask 0)
    are skipped and never change a clip's output.

    The plain embedding is VGGish's 128-d fc2 output per example *without* the final ReLU (current TF
    VGGish, the input the PCA expects), optionally PCA-whitened and quantised (`config.postprocess`),
    pooled over the clip's examples with `config.pooling`. The paper's baseline, which kept the ReLU,
    is `fusion_layers=[22]`.
    """

    def __init__(self, config):
        super().__init__(config)
        layers, channels = [], 1
        for spec in CONV_STACK:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                conv = VGGishInputConv if channels == 1 else nn.Conv2d
                layers += [conv(channels, spec, 3, padding=1), nn.ReLU(inplace=True)]
                channels = spec
        self.features = nn.Sequential(*layers)
        flat = channels * (EXAMPLE_FRAMES // 16) * (config.num_mel_bins // 16)
        self.fc = nn.Sequential(
            nn.Linear(flat, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 128), nn.ReLU(inplace=True),
        )
        if config.postprocess:
            self.postprocessor = VGGishPostprocessor()
        self.post_init()

    def check_inputs(self, input_values, attention_mask):
        """input_values [B, E, 96, 64] log-mel examples; attention_mask [B, E] marks real examples."""
        expected = (EXAMPLE_FRAMES, self.config.num_mel_bins)
        if input_values.ndim != 4 or tuple(input_values.shape[2:]) != expected:
            raise ValueError(
                f"input_values must be log-mel examples [batch, examples, {expected[0]}, {expected[1]}], got "
                f"{tuple(input_values.shape)}; compute them with VGGishFeatureExtractor."
            )
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_values.shape[:2]):
            raise ValueError(
                f"attention_mask must be [batch, examples] = {tuple(input_values.shape[:2])} (one flag per 0.96 s "
                f"example), got {tuple(attention_mask.shape)}."
            )

    def clip_outputs(self, input_values, attention_mask, output_hidden_states, plain):
        """Each real example through the layers on its own, its frames joined per clip, then the recipe."""
        mask = self._example_mask(input_values, attention_mask)  # None: every example is real
        shape = input_values.shape[:2]
        taps = set(range(NUM_LAYERS + 1)) if output_hidden_states else set()
        if self.config.embedding_type == "fusion":
            taps.update(self.config.fusion_layers)
        if plain:
            taps.add(PLAIN_LAYER)
        examples = input_values.flatten(0, 1) if mask is None else input_values[mask]  # [N, 96, 64] real examples
        frames = self._example_frames(examples, taps)  # {n: [N, 6, D_n]}
        frame_mask = None if mask is None or bool(mask.all()) else mask.repeat_interleave(FRAMES_PER_EXAMPLE, dim=1)
        layer_frames = {n: self._to_clips(frames[n], mask, shape) for n in taps}  # {n: [B, 6 E, D_n]}
        plain = self._plain_outputs(frames[PLAIN_LAYER][:, 0], mask, shape) if plain else None  # FC frames: copies
        out = fusion_outputs(self.config, layer_frames, output_hidden_states, plain, frame_mask)
        per_example = self.config.embedding_type == "plain"  # plain frames are one per example
        out["frame_mask"] = mask if per_example and frame_mask is not None else frame_mask
        return out

    def _plain_outputs(self, embedding, mask, shape):
        """[N, 128] fc2 per real example -> ([B, E, 128] per example, [B, 128] pooled over real examples)."""
        if self.config.postprocess:
            embedding = self.postprocessor(embedding)
        per_example = self._to_clips(embedding[:, None], mask, shape)
        return per_example, pool_frames(per_example, self.config.pooling, mask)

    def _example_mask(self, input_values, attention_mask):
        """-> [B, E] bool mask of real examples, None without attention_mask (all real: no boolean indexing, which
        torch.export cannot trace); raises ValueError when a clip has no real example."""
        if attention_mask is None:
            return None
        mask = attention_mask.to(device=input_values.device).bool()
        if not bool(mask.any(dim=1).all()):
            raise ValueError("attention_mask has a clip with no real example; every clip needs at least one.")
        return mask

    def _example_frames(self, examples, taps):
        """[N, 96, 64] -> {n: [N, 6, D_n]} per-frame features of layer #n for n in `taps`.

        Examples are independent, so they run in chunks: on CPU, chunks of 32 keep each activation
        under ~50 MB (conv1 gives 1.6 MB per example) however long the clips or large the batch.
        """
        step = EXAMPLES_PER_CHUNK if examples.device.type == "cpu" else EXAMPLES_PER_CHUNK_ACCELERATOR
        chunks = []
        for chunk in [examples] if torch.compiler.is_exporting() else examples.split(step):  # a graph has no loop
            outputs = self._run_layers(chunk, taps)
            chunks.append({n: self._frames(n, output) for n, output in outputs.items()})
        return {n: torch.cat([chunk[n] for chunk in chunks]) for n in taps}

    def _run_layers(self, examples, taps):
        """[N, 96, 64] -> {n: output of layer #n} for n in `taps` (0 = input), up to the last tapped layer."""
        x = examples.unsqueeze(1)
        outputs = {0: x} if 0 in taps else {}
        modules = list(self.features) + list(self.fc)
        for index, module in enumerate(modules[: max(taps)]):
            if index == len(self.features):
                x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF flattens NHWC: (time, mel, channel)
            x = module(x)  # channels-last (NHWC) maps from conv1 on: much faster pooling and convolutions
            if index + 1 in taps:  # the ReLUs work in place, so a pre-activation output is copied
                next_is_relu = index + 1 < len(modules) and isinstance(modules[index + 1], nn.ReLU)
                outputs[index + 1] = x.clone() if next_is_relu else x
        return outputs

    def _frames(self, n, output):
        """Layer #n's output -> [N, 6, D] per-frame features of each example."""
        if output.ndim == 2:  # FC layer: one vector per example
            return output[:, None].expand(-1, FRAMES_PER_EXAMPLE, -1)
        stride = 1 if n == 0 else self.config.time_strides[n - 1]
        return frame_features(output, EXAMPLE_FRAMES // FRAMES_PER_EXAMPLE // stride)

    @staticmethod
    def _to_clips(frames, mask, shape):
        """[N, k, D] per real example -> [B, E * k, D] (shape = (B, E)), examples in time order, zeros for padded
        ones (mask [B, E], None: all real)."""
        batch, num_examples = shape
        if mask is None:
            return frames.reshape(batch, num_examples * frames.shape[1], frames.shape[2])
        clips = frames.new_zeros(batch, num_examples, *frames.shape[1:])
        clips[mask] = frames
        return clips.reshape(batch, num_examples * frames.shape[1], frames.shape[2])


class VGGishForAudioClassification(VGGishPreTrainedModel):
    """VGGish with a linear probe on the fused embedding (or on the plain 128-d one with
    `config.classifier_input == "plain"`). VGGish was released without a classifier, so the probe
    starts untrained. Returns logits; `labels` give a loss."""

    def __init__(self, config):
        super().__init__(config)
        self.vggish = VGGishFusionModel(config)
        width = config.layer_sizes[PLAIN_LAYER] if config.classifier_input == "plain" else config.hidden_size
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(self, input_values, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None):
        return classify(self, input_values, attention_mask, labels, output_hidden_states, return_dict)
