"""The multilayer fusion recipe (Niizumi et al., EUSIPCO 2022), shared by every CNN backbone.

A chosen layer's feature map [B, C, T, F] (time on dim 2, frequency on dim 3) is max-pooled along
time only to the frame rate of the coarsest chosen layer, flattened channel-major (index c*F + f)
into one vector per frame, and the layers are concatenated. Clip embeddings pool these frames over
time: "mean+max" is the element-wise *sum* of the temporal mean and max (the paper's choice).

This file is remote code: it imports only torch and transformers and is copied next to each model's modeling file.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

POOLINGS = ("mean+max", "mean", "max")
EMBEDDING_TYPES = ("fusion", "plain")  # pooler_output: the paper's fusion, or the backbone's own embedding
CLASSIFIER_INPUTS = EMBEDDING_TYPES  # what a ForAudioClassification head reads


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
    tensors (ndim >= 3, dim 1) are zero-padded to the longest group; a `frame_mask` [B, T] is added.
    `lengths` [B] (valid frames per clip), or None when every clip has every frame (frame_mask None).
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
        if first.ndim >= 3:
            shape[1] = max_frames
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


def grouped_forward(model, input_values, attention_mask, output_hidden_states, output_plain_embedding, return_dict,
                    forward_frames, min_frames=1, min_audio=""):
    """The shared body of a base model's forward over frame-major `input_values` [B, T, ...].

    Resolves the config defaults, checks every clip has at least `min_frames` real frames, runs
    `forward_frames(values, output_hidden_states, plain)` once per clip length (`forward_by_length`)
    and returns an `AudioFusionOutput` (a tuple without `return_dict`).
    """
    config = model.config
    output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
    return_dict = config.return_dict if return_dict is None else return_dict
    lengths = None if attention_mask is None else lengths_from_mask(attention_mask, *input_values.shape[:2])
    shortest = input_values.shape[1] if lengths is None else int(lengths.min())
    if shortest == 0:
        raise ValueError("attention_mask has a clip with no valid frames; drop it or give at least one frame.")
    if shortest < min_frames:
        raise ValueError(
            f"{type(model).__name__} needs at least {min_frames} frames ({min_audio}); got a clip of {shortest} "
            "frames. Zero-pad short audio before feature extraction."
        )
    plain = output_plain_embedding or config.embedding_type == "plain"
    output = AudioFusionOutput(**forward_by_length(
        lambda values: forward_frames(values, output_hidden_states, plain), input_values, lengths))
    if not output_plain_embedding:
        output.plain_embedding = None
    return output if return_dict else output.to_tuple()
