"""The multilayer fusion recipe (Niizumi et al., EUSIPCO 2022), the one place every backbone's output is built.

The paper's rule (paper_method.md 1.1): a layer's feature map [B, C, T, F] (time on dim 2, frequency on
dim 3) is max-pooled along time only, "so its frame rate matches the model's last, coarsest layer",
flattened channel-major (index c*F + f) into one vector per frame, and the chosen layers are
concatenated. Clip embeddings pool these frames over time: "mean+max" is the element-wise *sum* of the
temporal mean and max (the paper's choice). So `last_hidden_state` is the concatenation of the chosen
layers' `hidden_states` and `pooler_output` that of their `pooled_hidden_states`, for any layer set.

A backbone gives only its layer maps and its plain embedding (`FusionModelMixin`); `fusion_outputs`
builds the `AudioFusionOutput` fields; `FusionConfigMixin` checks the fusion options however they
arrive. This file is remote code: it imports only torch and transformers and is copied next to each
model's modeling file.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

POOLINGS = ("mean+max", "mean", "max")
AST_POOLINGS = ("cls+dist",) + POOLINGS  # AST's per-layer (CLS + DIST) / 2 token embedding (Gong et al. 2021)
EMBEDDING_TYPES = ("fusion", "plain")  # pooler_output: the paper's fusion, or the backbone's own embedding
CLASSIFIER_INPUTS = EMBEDDING_TYPES  # what a ForAudioClassification head reads
FUSION_OPTIONS = ("fusion_layers", "pooling", "embedding_type", "classifier_input")


def check_fusion_options(fusion_layers, first, last, layers_described, pooling, embedding_type, classifier_input,
                         poolings=POOLINGS):
    """The options every fusion config shares -> `fusion_layers` sorted without repeats. Raises ValueError
    naming the option: layers outside first-last ("fusion_layers must be {layers_described}, got ..."), or a
    pooling / embedding_type / classifier_input outside `poolings` / EMBEDDING_TYPES / CLASSIFIER_INPUTS."""
    if isinstance(fusion_layers, (str, bytes)) or not hasattr(fusion_layers, "__iter__") or not all(
            float(layer) == int(layer) for layer in fusion_layers):
        raise ValueError(f"fusion_layers must be a list of {layers_described}, got {fusion_layers!r}")
    layers = sorted({int(layer) for layer in fusion_layers})
    if not layers or not all(first <= layer <= last for layer in layers):
        raise ValueError(f"fusion_layers must be {layers_described}, got {layers}")
    for option, value, allowed in (("pooling", pooling, poolings), ("embedding_type", embedding_type, EMBEDDING_TYPES),
                                   ("classifier_input", classifier_input, CLASSIFIER_INPUTS)):
        if value not in allowed:
            raise ValueError(f"{option} must be one of {allowed}, got {value!r}")
    return layers


class FusionConfigMixin:
    """Checks a fusion config's options however they arrive: constructor, `from_pretrained(..., **kwargs)`
    (transformers sets those attributes after construction) or `config.option = value` later.

    Mixed in before `PretrainedConfig`. Each assignment of a name in `checked_options` (the four
    FUSION_OPTIONS and any the config adds) runs `check_options` on all of them once all are set, so
    a bad value raises ValueError naming the option and its allowed values, and nothing is stored.
    A config gives `fusion_layer_range()` -> (first, last, description) and may set `poolings` or
    extend `check_options` with its own checks.
    """

    checked_options = FUSION_OPTIONS
    poolings = POOLINGS

    def __setattr__(self, name, value):
        if name in self.checked_options:
            options = {option: self.__dict__[option] for option in self.checked_options if option in self.__dict__}
            options[name] = value
            if len(options) == len(self.checked_options):  # in __init__: once the last of them is assigned
                options = self.check_options(options)
                for option, checked in options.items():
                    if option != name:
                        super().__setattr__(option, checked)
                value = options[name]
        super().__setattr__(name, value)

    def fusion_layer_range(self):
        """(first, last, description) of the valid `fusion_layers`, e.g. (1, 6, "ConvBlock numbers 1-6")."""
        raise NotImplementedError

    def check_options(self, options):
        """{name: value} of `checked_options` -> the values to store (`fusion_layers` sorted, no repeats)."""
        first, last, described = self.fusion_layer_range()
        options["fusion_layers"] = check_fusion_options(
            options["fusion_layers"], first, last, described, options["pooling"], options["embedding_type"],
            options["classifier_input"], self.poolings)
        return options


@dataclass
class AudioFusionOutput(ModelOutput):
    """Output of every fusion model in this package.

    Args:
        last_hidden_state: [B, T, D] fused per-frame features (zero rows past a clip's end).
        pooler_output: [B, D] clip embedding (temporal pooling of `last_hidden_state`, or the
            backbone's plain embedding when `config.embedding_type == "plain"`).
        hidden_states: with `output_hidden_states`, a tuple of num_layers + 1 per-frame features
            [B, T, D_l] at the backbone's final frame rate; index 0 is the input, index l layer l.
        pooled_hidden_states: with `output_hidden_states`, each hidden state's clip embedding [B, D_l]
            pooled by `config.pooling`: the single-layer probes of the paper, from one forward pass.
        frame_mask: [B, T] bool, True for real frames; None when every clip has every frame.
        plain_embedding: with `output_plain_embedding`, the backbone's original clip embedding.
    """

    last_hidden_state: torch.FloatTensor = None
    pooler_output: torch.FloatTensor = None
    hidden_states: tuple = None
    pooled_hidden_states: tuple = None
    frame_mask: torch.BoolTensor = None
    plain_embedding: torch.FloatTensor = None


def frame_features(feature_map, kernel, ceil_mode=False):
    """[B, C, T, F] -> [B, T', C*F]: max-pool time by `kernel` (stride = kernel), flatten channel-major.

    T' = floor(T / kernel), or ceil with `ceil_mode` (for backbones whose strided layers round up).
    """
    if kernel > 1:
        feature_map = F.max_pool2d(feature_map, (kernel, 1), (kernel, 1), ceil_mode=ceil_mode)
    batch, channels, frames, freqs = feature_map.shape
    return feature_map.permute(0, 2, 1, 3).reshape(batch, frames, channels * freqs)


def fuse_layers(feature_maps, time_strides, target_stride=None, ceil_mode=False):
    """Per-frame features of several layers, concatenated at one frame rate.

    feature_maps: list of [B, C_l, T_l, F_l]; time_strides: each layer's total time downsampling
    relative to the input frames; target_stride: the frame rate to pool to, by default the coarsest
    of the given layers. Returns [B, T, sum_l C_l * F_l].
    """
    target_stride = target_stride or max(time_strides)
    frames = []
    for feature_map, stride in zip(feature_maps, time_strides):
        if target_stride % stride:
            raise ValueError(f"time stride {stride} does not divide the target stride {target_stride}")
        frames.append(frame_features(feature_map, target_stride // stride, ceil_mode))
    if any(f.shape[1] != frames[0].shape[1] for f in frames):  # no set of sizes: torch.export's are symbolic
        raise ValueError(f"fused layers disagree on the frame count: {sorted({int(f.shape[1]) for f in frames})}")
    return torch.cat(frames, dim=-1)


def pool_frames(frames, pooling="mean+max", frame_mask=None):
    """[B, T, D] -> [B, D] temporal pooling; `frame_mask` [B, T] (True = valid) excludes padding."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if frame_mask is None:
        mean, peak = frames.mean(dim=1), frames.amax(dim=1)
    else:
        mask = frame_mask.to(frames.dtype).unsqueeze(-1)
        mean = (frames * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        peak = frames.masked_fill(~frame_mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)
    if pooling == "mean":
        return mean
    if pooling == "max":
        return peak
    return mean + peak


def lengths_from_mask(attention_mask, batch_size, num_frames):
    """Valid input frames per clip, [B] long, from an input-frame `attention_mask` [B, T] (or None)."""
    if attention_mask is None:
        return torch.full((batch_size,), num_frames, dtype=torch.long)
    return attention_mask.long().sum(dim=1).cpu()


def forward_by_length(forward_fn, input_values, lengths, time_dim=1):
    """Run `forward_fn` once per distinct clip length so padding never changes a clip's output.

    Convolutions see their neighbours, so a padded clip's last frames would differ from the clip run
    alone; grouping clips of equal length keeps every embedding identical to a single-clip forward.
    `forward_fn(inputs)` returns a dict of tensors ([b, ...]) and tuples of tensors. Frame-axis
    tensors (ndim >= 3, dim 1) are zero-padded to the longest group; a `frame_mask` [B, T] of
    `last_hidden_state`'s real frames is added. `lengths` [B] (valid frames per clip), or None when every clip has
    every frame (one forward, frame_mask None).
    """
    if lengths is None:  # every clip has every frame: one forward, no tensor-to-int step (torch.export traces it)
        return {**forward_fn(input_values), "frame_mask": None}
    groups = {}
    for index, length in enumerate(lengths.tolist()):
        groups.setdefault(length, []).append(index)
    if len(groups) == 1:
        length = next(iter(groups))
        outputs = forward_fn(input_values.narrow(time_dim, 0, length))
        frames = outputs["last_hidden_state"].shape[1]
        outputs["frame_mask"] = None if length == input_values.shape[time_dim] else torch.ones(
            input_values.shape[0], frames, dtype=torch.bool, device=input_values.device)
        return outputs
    results = [(rows, forward_fn(input_values[rows].narrow(time_dim, 0, length))) for length, rows in groups.items()]
    max_frames = max(out["last_hidden_state"].shape[1] for _, out in results)
    batch = input_values.shape[0]

    def merge(values):
        first = values[0]
        if first is None:
            return None
        if isinstance(first, tuple):
            return tuple(merge([v[i] for v in values]) for i in range(len(first)))
        shape = list(first.shape)
        shape[0] = batch
        if first.ndim >= 3:  # each field to its own longest group: YAMNet's plain patches and its frames differ
            shape[1] = max(value.shape[1] for value in values)
        merged = first.new_zeros(shape)
        for (rows, _), value in zip(results, values):
            if value.ndim >= 3:
                merged[rows, : value.shape[1]] = value
            else:
                merged[rows] = value
        return merged

    merged = {key: merge([out[key] for _, out in results]) for key in results[0][1]}
    frame_mask = torch.zeros(batch, max_frames, dtype=torch.bool, device=input_values.device)
    for rows, out in results:
        frame_mask[rows, : out["last_hidden_state"].shape[1]] = True
    merged["frame_mask"] = frame_mask
    return merged


def layer_frames(layer_map, kernel, ceil_mode=False):
    """One layer at the final frame rate: a map [B, C, T, F] -> `frame_features(map, kernel)` [B, T', C*F];
    frames [B, T', D] that a backbone already gives at the final rate (VGGish, transformers) pass as they are."""
    return layer_map if layer_map.ndim == 3 else frame_features(layer_map, kernel, ceil_mode)


def fusion_outputs(config, layer_maps, output_hidden_states=False, plain=None, frame_mask=None,
                   layer_embeddings=None, time_strides=None, ceil_mode=False):
    """The recipe: every `AudioFusionOutput` field but `frame_mask`, from a backbone's layer maps.

    Args:
        config: the fusion config (`fusion_layers`, `pooling`, `embedding_type`, `layer_sizes`: one entry per
            layer, index 0 the input, so num_layers = len(layer_sizes) - 1; `time_strides` of layers 1-N if
            the layers differ in frame rate).
        layer_maps: list or dict, index = layer number (0 = input): [B, C, T_l, F_l] maps, or [B, T, D]
            frames already at the final rate. Needed: `fusion_layers` (for "fusion"), every layer with
            `output_hidden_states`, the plain layer when `plain` is one.
        plain: None, a pair (frames [B, T, D] or None, embedding [B, D]) the backbone computes its own way,
            or a layer number whose frames and clip embedding are the plain ones (encoder fusion: the last).
        frame_mask: [B, T] True for real frames (None: all real): pooling skips the rest, fused frames
            past a clip's end are zeroed.
        layer_embeddings: {layer: [B, D]} the backbone's own clip embedding per layer, used when
            `config.pooling` is not a temporal pooling (AST's "cls+dist").
        time_strides: input frames per frame of layers 0-N; default [1] + `config.time_strides`, or all 1.
        ceil_mode: frame counts round up (backbones whose strided layers pad: EfficientAT, YAMNet).

    Every layer is max-pooled in time to the final (last) layer's frame rate, so `last_hidden_state` =
    cat(hidden_states[l] for l in fusion_layers) and `pooler_output` = cat(pooled_hidden_states[l]).
    Returns a dict; raises ValueError when a layer's stride does not divide the final one or the
    fused layers' frame counts differ.
    """
    num_layers = len(config.layer_sizes) - 1
    if time_strides is None:
        strides = getattr(config, "time_strides", None)
        time_strides = [1] * (num_layers + 1) if strides is None else [1, *strides]
    final = time_strides[-1]
    frames, embeddings = {}, {}

    def frames_of(layer):
        if layer not in frames:
            layer_map, stride = layer_maps[layer], time_strides[layer]
            if layer_map.ndim == 4 and final % stride:
                raise ValueError(f"layer {layer}'s time stride {stride} does not divide the final stride {final}")
            frames[layer] = layer_frames(layer_map, 1 if layer_map.ndim == 3 else final // stride, ceil_mode)
        return frames[layer]

    def embedding_of(layer):
        if layer not in embeddings:
            if config.pooling in POOLINGS:
                embeddings[layer] = pool_frames(frames_of(layer), config.pooling, frame_mask)
            elif layer_embeddings is None:
                raise ValueError(f"pooling {config.pooling!r} needs the backbone's own per-layer clip embeddings")
            else:
                embeddings[layer] = layer_embeddings[layer]
        return embeddings[layer]

    def fused(layers):
        parts = [frames_of(layer) for layer in layers]
        if any(part.shape[1] != parts[0].shape[1] for part in parts):  # no set of sizes: torch.export's are symbolic
            raise ValueError(f"fused layers disagree on the frame count: {sorted({int(p.shape[1]) for p in parts})}")
        joined = torch.cat(parts, dim=-1)
        return joined if frame_mask is None else joined * frame_mask.unsqueeze(-1).to(joined.dtype)

    out = {}
    if isinstance(plain, int) and not isinstance(plain, bool):
        plain = (fused([plain]), embedding_of(plain))
    if plain is not None:
        out["plain_embedding"] = plain[1]
    if config.embedding_type == "plain":
        out["last_hidden_state"], out["pooler_output"] = plain
    else:
        out["last_hidden_state"] = fused(config.fusion_layers)
        out["pooler_output"] = torch.cat([embedding_of(layer) for layer in config.fusion_layers], dim=-1)
    if output_hidden_states:
        out["hidden_states"] = tuple(frames_of(layer) for layer in range(num_layers + 1))
        out["pooled_hidden_states"] = tuple(embedding_of(layer) for layer in range(num_layers + 1))
    return out


class FusionPreTrainedModel(PreTrainedModel):
    """The base of every backbone's `XPreTrainedModel`, which sets `config_class` and `base_model_prefix`."""

    main_input_name = "input_values"
    input_modalities = ("audio",)


class FusionModelMixin:
    """The shared base-model forward: a backbone model (mixed in before its `XPreTrainedModel`) gives

    - `check_inputs(input_values, attention_mask)`: raise ValueError for a wrong shape, naming the extractor;
    - `layer_maps(inputs, layers)` -> list or dict of maps [b, C, T, F] (or frames [b, T, D] at the final
      rate), index = layer number, 0 = the input, for at least the sorted layer numbers `layers`
      (computing nothing above the deepest); or override `layer_outputs` to add per-layer clip embeddings;
    - `plain_outputs(inputs, maps, layer_embeddings)` -> (frames [b, T, D] or None, embedding [b, D]): the
      backbone's own embedding, read from the last layer's map unless `plain_from_last_layer` is False;
    - `min_frames` / `min_audio` (the shortest clip, in input frames and in words) and `ceil_mode`.

    `forward` casts the input to the model's device and dtype, resolves the config defaults, runs clips
    of each length as their own sub-batch (`forward_by_length`: padding never changes a clip's output)
    and returns `fusion_outputs` as an `AudioFusionOutput` (a tuple without `return_dict`).
    """

    min_frames = 1
    min_audio = "one frame"
    ceil_mode = False
    plain_from_last_layer = True

    def forward(self, input_values, attention_mask=None, output_hidden_states=None, output_plain_embedding=False,
                return_dict=None):
        """input_values as the backbone's feature extractor returns them; attention_mask marks real frames.
        Returns `AudioFusionOutput`; raises ValueError for a wrong input shape or too short a clip."""
        return self.fusion_forward(input_values, attention_mask, output_hidden_states, output_plain_embedding,
                                   return_dict)

    def fusion_forward(self, input_values, attention_mask, output_hidden_states, output_plain_embedding, return_dict,
                       **encoder_inputs):
        """`forward`'s body; `encoder_inputs` (e.g. CLAP's `is_longer`) go on to `clip_outputs`."""
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.return_dict if return_dict is None else return_dict
        self.check_inputs(input_values, attention_mask)
        input_values = input_values.to(device=self.device, dtype=self.dtype)  # half-precision models: float32 in
        plain = output_plain_embedding or config.embedding_type == "plain"
        outputs = self.clip_outputs(input_values, attention_mask, output_hidden_states, plain, **encoder_inputs)
        if not output_plain_embedding:  # computed for embedding_type="plain" only
            outputs.pop("plain_embedding", None)
        output = AudioFusionOutput(**outputs)
        return output if return_dict else output.to_tuple()

    def clip_outputs(self, input_values, attention_mask, output_hidden_states, plain):
        """The output fields of frame-major `input_values` [B, T, ...], one sub-batch per clip length."""
        # no mask: every clip has every frame, one forward and no tensor-to-int step (torch.export traces it)
        lengths = None if attention_mask is None else lengths_from_mask(attention_mask, *input_values.shape[:2])
        shortest = input_values.shape[1] if lengths is None else int(lengths.min())
        if shortest == 0:
            raise ValueError("attention_mask has a clip with no valid frames; drop it or give at least one frame.")
        if shortest < self.min_frames:
            raise ValueError(
                f"{type(self).__name__} needs at least {self.min_frames} frames ({self.min_audio}); got a clip of "
                f"{shortest} frames. Zero-pad short audio before feature extraction."
            )
        return forward_by_length(lambda values: self.recipe_outputs(values, output_hidden_states, plain),
                                 input_values, lengths)

    def recipe_outputs(self, inputs, output_hidden_states, plain):
        """`fusion_outputs` of one sub-batch: the layer maps needed, and no deeper, then the recipe."""
        config = self.config
        last = len(config.layer_sizes) - 1
        needed = set(config.fusion_layers) if config.embedding_type == "fusion" else set()
        if output_hidden_states:
            needed.update(range(last + 1))
        if plain and self.plain_from_last_layer:
            needed.add(last)
        maps, embeddings = self.layer_outputs(inputs, sorted(needed)) if needed else (None, None)
        plain = self.plain_outputs(inputs, maps, embeddings) if plain else None
        return fusion_outputs(config, maps, output_hidden_states, plain, layer_embeddings=embeddings,
                              ceil_mode=self.ceil_mode)

    def layer_outputs(self, inputs, layers):
        """(layer maps, per-layer clip embeddings or None); the default has no embeddings of its own."""
        return self.layer_maps(inputs, layers), None
