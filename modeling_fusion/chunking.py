"""Bounded-memory embedding of one clip of any length: the whole clip when it fits a memory budget, else
overlapping chunks, stitched fused frames.

    from modeling_fusion.chunking import embed_long_clip
    out = embed_long_clip(model, feature_extractor, audio)   # audio: 1-D float at the extractor's rate
    out.pooler_output [1, D], out.last_hidden_state [1, T, D], with output_hidden_states also
    out.pooled_hidden_states (per-layer clip embeddings [1, D_l]; per-layer frames are not kept)

Whole or chunked (`chunk_length`, the one decision the pipeline, fusion-embed, HEAR and X-ARES share): a clip
runs whole, exactly as one `inference.embed` call, when its whole-clip pass fits `memory_budget_gib` (default
1 GiB: a laptop or a 16 GB GPU holds it beside the model). The cost is the config's
`whole_clip_bytes_per_second`: peak memory growth of a whole-clip pass per second of audio, measured per backbone
(`benchmarks/bench_long_clips.py`, whole rows), stated with each configuration. Longer clips run in chunks as long
as the budget allows (or `chunk_length_s`). A model whose config states no cost (encoder fusion) keeps the length
rule: clips longer than `chunk_length_s` (default 30 s) run in chunks. `chunk_length_s=0` never chunks.

Chunks are cut on one grid of *units* (one fused frame, or a group of them: `ChunkSpec`):
chunk k keeps units [kK, (k+1)K) (K ~ the chunk length) and is run with C units of context on each side
(C covers the backbone's receptive field), whose frames are dropped before stitching. Every chunk starts on
a unit boundary, so its frames fall on the whole clip's frame grid; the first chunk starts and the last
ends where the clip does, so the clip's edges are treated as in a whole-clip pass. The clip embedding is
pooled with running sum / count / max over the kept frames, and frames go into one preallocated
[T, D] tensor: memory is that of one chunk plus the output frames (none with `return_frames=False`).
Models with clip-wide channel gates (EfficientAT's squeeze-excitation) first fix every gate to its whole-clip
value, one pass per gate module over the chunks (`clip_gates.whole_clip_gates`), so their chunks are exact too.
Clip embeddings that are not a pooling of the frames (plain embeddings, "cls+dist") are the
frame-count-weighted mean of the chunks' clip embeddings: an approximation.

This module knows no backbone: each model's config describes its own frame geometry with
`config.chunk_spec(feature_extractor) -> ChunkSpec`, whose docstring says how its chunked frames differ
from a whole-clip pass (exact, or an approximation, with measured differences).

Remote code: imports only numpy, torch and sibling files.
"""

import logging
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .clip_gates import gate_modules, whole_clip_gates
from .fusion import AudioFusionOutput
from .inference import embed

logger = logging.getLogger(__name__)
DEFAULT_MEMORY_BUDGET_GIB = 1.0  # a clip whose whole-clip pass needs more runs in chunks
DEFAULT_CHUNK_LENGTH_S = 30.0  # models without a stated cost: clips longer than this run in chunks of about this


@dataclass(frozen=True)
class ChunkSpec:
    """How a model's fused frames sit on the waveform, in samples at the feature extractor's rate.

    unit_samples: samples between chunk grid units (one fused frame, or a group of frames).
    frames_per_unit: fused frames per unit.
    context_units: units of context run on each side of a chunk and dropped (>= the receptive field).
    tail_samples: samples past its `unit_samples` that the last unit of a chunk reads.
    window_units: most units one chunk may span including context (a position-embedding grid), or None.
    first_centre: sample position of fused frame 0's centre; frame j is at first_centre + j * frame_hop.
    num_frames: fused frames of a whole clip of N samples, as the model gives them.
    exact: whether chunked frames equal a whole-clip pass (up to float rounding).
    pooled_from_frames: whether `pooler_output` is `config.pooling` of the frames (else a mean of chunks').
    layers_from_frames: likewise for `pooled_hidden_states`.
    layer_frames_per_unit: frames per unit of `hidden_states` (the backbone's final frame rate).
    length_period: chunks run with a length congruent to the clip's modulo this many samples (their end moved
        later by less than one period, never past the clip's end), for a model whose frame grid depends on
        its input's length (TF "SAME" padding); it divides `unit_samples`, so every chunk starts on a multiple of it.
    """

    unit_samples: int
    frames_per_unit: int
    context_units: int
    tail_samples: int
    window_units: Optional[int]
    first_centre: float
    num_frames: Callable[[int], int]
    exact: bool
    pooled_from_frames: bool
    layers_from_frames: bool
    layer_frames_per_unit: int = 1
    length_period: Optional[int] = None

    @property
    def frame_hop(self):
        """Samples between consecutive fused frames (may be fractional)."""
        return self.unit_samples / self.frames_per_unit

    def timestamps_ms(self, num_frames, sampling_rate):
        """Centres of fused frames 0..num_frames-1 in milliseconds, float64 [num_frames]."""
        centres = self.first_centre + np.arange(num_frames, dtype=np.float64) * self.frame_hop
        return centres * (1000.0 / sampling_rate)


def base_model(model):
    """The base (AutoModel) model of a ForAudioClassification model, or `model` itself."""
    return getattr(model, getattr(model, "base_model_prefix", ""), model)


class _RunningPool:
    """Running mean / max over frames [t, D] and frame-weighted mean of clip vectors [D], in float64."""

    def __init__(self):
        self.total, self.peak, self.count = None, None, 0

    def add_frames(self, frames):
        total, peak = frames.double().sum(dim=0), frames.amax(dim=0)
        self.total = total if self.total is None else self.total + total
        self.peak = peak if self.peak is None else torch.maximum(self.peak, peak)
        self.count += frames.shape[0]

    def add_vector(self, vector, weight):
        total = vector.double() * weight
        self.total = total if self.total is None else self.total + total
        self.count += weight

    def frames_result(self, pooling, dtype):
        mean = (self.total / self.count).to(dtype)
        return mean if pooling == "mean" else self.peak if pooling == "max" else mean + self.peak

    def vector_result(self, dtype):
        return (self.total / self.count).to(dtype)


def _as_clip(audio):
    if hasattr(audio, "detach"):
        audio = audio.detach().float().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"embed_long_clip: `audio` must be one mono clip [N], got shape {audio.shape}")
    return audio


def _run(model, feature_extractor, audio, output_hidden_states):
    return embed(model, feature_extractor, [audio], feature_extractor.sampling_rate, output_hidden_states)


def chunk_plan(num_samples, spec, chunk_length_s, sampling_rate):
    """[(first unit kept, end unit kept, first sample run, end sample run)] for a clip of `num_samples`.

    Kept units of one chunk: K = round(chunk_length_s / unit duration), at most `window_units` - 2C.
    With `window_units` W, the first and last chunks take more context on their inner side so that every
    chunk spans W units when the clip has as many (every window is the model's whole position grid).
    """
    total_units = -(-spec.num_frames(num_samples) // spec.frames_per_unit)
    keep = max(1, round(chunk_length_s * sampling_rate / spec.unit_samples))
    window = spec.window_units
    if window is not None:
        keep = min(keep, window - 2 * spec.context_units)
    plan = []
    for first in range(0, total_units, keep):
        end = min(first + keep, total_units)
        run_first, run_end = max(0, first - spec.context_units), end + spec.context_units
        if window is not None:
            run_first = max(0, min(run_first, total_units - window))
            run_end = max(run_end, run_first + window)
        stop = min(num_samples, run_end * spec.unit_samples + spec.tail_samples)
        if spec.length_period:
            stop += (num_samples - stop) % spec.length_period
        plan.append((first, end, run_first * spec.unit_samples, stop))
    return plan


def whole_clip_gib(config, num_samples, sampling_rate):
    """Peak memory (GiB) a whole-clip pass over `num_samples` needs: `config.whole_clip_bytes_per_second` times
    the clip's seconds (linear in length, measured per backbone), or None when the config states no cost."""
    per_second = getattr(config, "whole_clip_bytes_per_second", None)
    return None if per_second is None else per_second * num_samples / sampling_rate / 2**30


def chunk_length(model, feature_extractor, num_samples, chunk_length_s=None,
                 memory_budget_gib=DEFAULT_MEMORY_BUDGET_GIB):
    """None when a clip of `num_samples` runs whole, else the chunk length (seconds) to run it in.

    With a stated cost (`whole_clip_gib`): whole when it is at most `memory_budget_gib` (None: always whole), else
    chunks of `chunk_length_s` or, by default, as long as the budget holds (context included). Without one: the
    length rule, chunks when the clip is longer than `chunk_length_s` (default 30 s); for an encoder whose feature
    extractor cuts clips to its window (transformers' AST: 1024 frames, Whisper: 30 s) at most that window, so
    that frames cover the whole clip. `chunk_length_s=0`, or an extractor with `fixed_clip_seconds` (it cuts
    clips itself), always whole. The pipeline, fusion-embed, HEAR and X-ARES all decide with this function.
    """
    config = base_model(model).config
    rate = feature_extractor.sampling_rate
    if chunk_length_s == 0 or getattr(feature_extractor, "fixed_clip_seconds", None):
        return None
    cost = whole_clip_gib(config, num_samples, rate)
    if cost is not None:
        if memory_budget_gib is None or cost <= memory_budget_gib:
            return None
        if chunk_length_s:
            return chunk_length_s
        if not hasattr(config, "chunk_spec"):
            return DEFAULT_CHUNK_LENGTH_S  # runs whole anyway (embed_long_clip warns)
        spec = config.chunk_spec(feature_extractor)
        unit_s = spec.unit_samples / rate
        if spec.window_units:  # every window spans the same units, whatever it keeps: keep the most
            return (spec.window_units - 2 * spec.context_units) * unit_s
        return max(unit_s, memory_budget_gib * 2**30 / config.whole_clip_bytes_per_second
                   - 2 * spec.context_units * unit_s)
    chunk_s = chunk_length_s or DEFAULT_CHUNK_LENGTH_S
    if hasattr(config, "encoder_config"):
        chunk_s = min(chunk_s, _window_samples(config, feature_extractor) / rate)
    return chunk_s if num_samples > chunk_s * rate else None  # a config that cannot chunk says so in embed_long_clip


def _window_samples(config, feature_extractor):
    """Samples an encoder's own extractor keeps of a clip (transformers' AST: 1024 frames), or infinity."""
    try:
        spec = config.chunk_spec(feature_extractor)
    except ValueError:  # CLAP: its extractor fits every clip into 10 s itself
        return math.inf
    return spec.window_units * spec.unit_samples if spec.window_units else math.inf


def embed_long_clip(model, feature_extractor, audio, chunk_length_s=None, output_hidden_states=False,
                    return_frames=True, memory_budget_gib=DEFAULT_MEMORY_BUDGET_GIB):
    """Embed one clip of any length: whole when it fits the memory budget, else with memory bounded by one chunk
    (plus the returned frames).

    model: a base model of this package (or its ForAudioClassification model, whose base is used), in
        eval mode, on any device; feature_extractor: its extractor (each chunk runs `inference.embed`: the
        front end on the model's device where the extractor has a torch one).
    audio: one mono clip [N] (numpy or torch, float in [-1, 1]) at `feature_extractor.sampling_rate` Hz.
    memory_budget_gib: a clip whose whole-clip pass would need more (`whole_clip_gib`) runs in chunks; one that
        fits runs whole, exactly `inference.embed(model, extractor, [audio], rate)`. None: always whole.
    chunk_length_s: the chunks' length in seconds (default: as long as the budget holds); for a model that
        states no cost, clips longer than it (default 30 s) run in chunks. 0: always whole, as is every clip
        for an extractor with `fixed_clip_seconds` (it cuts clips to that length itself). See `chunk_length`.
    output_hidden_states: also return `pooled_hidden_states` (per-layer clip embeddings [1, D_l]).
        Chunked results carry no per-layer frames (`hidden_states` is None).
    return_frames: False leaves `last_hidden_state` None for chunked clips (memory independent of length).
    Returns an `AudioFusionOutput` with batch size 1: pooler_output [1, D], last_hidden_state [1, T, D]
    (every frame real, `frame_mask` None). A model whose config has no `chunk_spec(feature_extractor)`
    runs long clips whole, with a warning. Raises ValueError for audio that is not one clip, or too short
    for the model (from the feature extractor).
    """
    model = base_model(model)
    audio = _as_clip(audio)
    rate = feature_extractor.sampling_rate
    chunk_s = chunk_length(model, feature_extractor, len(audio), chunk_length_s, memory_budget_gib)
    if chunk_s is None:
        return _run(model, feature_extractor, audio, output_hidden_states)
    if not hasattr(model.config, "chunk_spec"):
        logger.warning(f"{model.config.model_type} has no chunking description (config.chunk_spec): the "
                       f"{len(audio) / rate:.0f} s clip runs whole, with memory growing with its length.")
        return _run(model, feature_extractor, audio, output_hidden_states)
    spec = model.config.chunk_spec(feature_extractor)
    plan = chunk_plan(len(audio), spec, chunk_s, rate)
    if not gate_modules(model):
        return _stitch(model, feature_extractor, audio, spec, plan, output_hidden_states, return_frames)
    chunks = [(first, end, start // spec.unit_samples, index == len(plan) - 1)
              for index, (first, end, start, _) in enumerate(plan)]
    cached = _FeatureCache(feature_extractor)  # every pass runs the same chunks: their features once

    def run(index):
        _run(model, cached, audio[plan[index][2]:plan[index][3]], output_hidden_states)

    with whole_clip_gates(model, chunks, run, spec.unit_samples // feature_extractor.hop_length):
        return _stitch(model, cached, audio, spec, plan, output_hidden_states, return_frames)


class _FeatureCache:
    """A feature extractor whose result for one slice of the clip (same memory, length and arguments) is computed
    once: the exact gate scheme runs every chunk once per gate module. Holds every chunk's features (log-mel:
    about 60 MB per 20 minutes of EfficientAT's 32 kHz audio)."""

    def __init__(self, feature_extractor):
        self._extractor, self._features = feature_extractor, {}

    def __getattr__(self, name):
        return getattr(self._extractor, name)

    def __call__(self, clips, **kwargs):
        clip = clips[0]  # `inference.features` passes one chunk, a numpy view of the clip, in a list
        key = (clip.ctypes.data, len(clip), tuple(sorted((k, str(v)) for k, v in kwargs.items())))
        if key not in self._features:
            self._features[key] = self._extractor(clips, **kwargs)
        return self._features[key]


def _stitch(model, feature_extractor, audio, spec, plan, output_hidden_states, return_frames):
    """Run the chunks of `plan` and stitch their kept frames and running pools into one clip's output."""
    total = spec.num_frames(len(audio))
    frames_out, pooled, layers = None, _RunningPool(), None
    for first, end, start, stop in plan:
        out = _run(model, feature_extractor, audio[start:stop], output_hidden_states)
        offset = first * spec.frames_per_unit - start // spec.unit_samples * spec.frames_per_unit
        count = min(end * spec.frames_per_unit, total) - first * spec.frames_per_unit
        frames = out.last_hidden_state[0]
        if frames.shape[0] < offset + count:
            raise RuntimeError(f"chunk of samples {start}-{stop} gave {frames.shape[0]} frames, expected at least "
                               f"{offset + count}: the chunking description of {model.config.model_type} is wrong")
        kept = frames[offset : offset + count]
        if return_frames:
            if frames_out is None:
                frames_out = kept.new_empty(total, kept.shape[-1])
            frames_out[first * spec.frames_per_unit : first * spec.frames_per_unit + count] = kept
        if spec.pooled_from_frames:
            pooled.add_frames(kept)
        else:
            pooled.add_vector(out.pooler_output[0], count)
        if output_hidden_states:
            layers = layers or [_RunningPool() for _ in out.pooled_hidden_states]
            run_first = start // spec.unit_samples
            # the last chunk keeps every layer frame to the clip's end (YAMNet "plain": the log-mel outlasts patches)
            last = end * spec.frames_per_unit >= total
            rows = slice((first - run_first) * spec.layer_frames_per_unit,
                         None if last else (end - run_first) * spec.layer_frames_per_unit)
            for index, layer in enumerate(layers):
                if spec.layers_from_frames:
                    layer.add_frames(out.hidden_states[index][0, rows])
                else:
                    layer.add_vector(out.pooled_hidden_states[index][0], count)
        del out, frames, kept
    dtype = frames_out.dtype if frames_out is not None else next(model.parameters()).dtype
    pooling = model.config.pooling

    def result(pool, from_frames):
        return (pool.frames_result(pooling, dtype) if from_frames else pool.vector_result(dtype))[None]

    return AudioFusionOutput(
        last_hidden_state=None if frames_out is None else frames_out[None],
        pooler_output=result(pooled, spec.pooled_from_frames),
        pooled_hidden_states=None if layers is None else tuple(result(p, spec.layers_from_frames) for p in layers),
    )
