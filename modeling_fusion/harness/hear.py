"""The HEAR 2021 API (hear-eval-kit, hear-validator) for every model of this package.

    python3 -m heareval.embeddings.runner modeling_fusion.harness.hear --model MODEL_FOLDER --tasks-dir tasks

    model = load_model("models/efficientat-mn04")          # a converted folder or a Hub id
    embeddings, timestamps = get_timestamp_embeddings(audio, model)   # audio [n, samples], float in [-1, 1]
    scene = get_scene_embeddings(audio, model)                        # [n, D]

Scene embedding: the model's clip embedding (`pooler_output`, e.g. mean+max of the fused frames), equal to
`AutoModel` on the same audio. Timestamp embeddings: the fused per-frame features (`last_hidden_state`)
with the time of each frame's centre, from exact frame arithmetic (`chunking.ChunkSpec.timestamps_ms`):

| backbone | rate | frame hop | first centre | timestamp_embedding_size (published variant) |
|---|---|---|---|---|
| CNN14-Fusion#3#6 | 16 / 32 kHz | 320 ms | 155 ms (mean of 32 input frames) | 6144 |
| EfficientAT-Fusion#12#14 | 32 kHz | 320 ms | 0 ms (strided-conv centre) | 640 |
| VGGish-Fusion#10#15 | 16 kHz | 160 ms | 87.5 ms | 8192 |
| AST-Fusion#5#12 | 16 kHz | 100 ms | 87.5 ms (16-frame patch) | 18432 (2 x 12 x 768) |
| YAMNet-Fusion#6#14 | 16 kHz | 320 ms | 167.5 ms (32 frames) | 4096 |

HEAR suggests timestamps every <= 50 ms (its validator only warns above that): onsets in music
transcription (50 ms tolerance) and sound event detection are scored at our 100-320 ms frames, so event
boundaries are at best a frame hop apart and onset F-measures suffer; scene (clip) tasks are unaffected.
A finer rate is not offered: the fusion recipe pools every layer to the coarsest fused layer's rate, and
repeating or interpolating frames would add timestamps without adding temporal detail.

Long clips (HEAR asks for 20 minutes): a clip whose whole-clip pass would need more than `memory_budget_gib`
(option of `load_model`, default 1 GiB) runs through `chunking.embed_long_clip` in chunks, so memory does not
grow with length beyond the returned frames; clips that fit give exactly the whole-clip result, in batches
within the budget. The same decision as the pipeline's and fusion-embed's (`chunking.chunk_length`), so the
three give the same numbers for the same clip. `chunk_length_s` (option) sets the chunks' length.

VGGish's timestamp embeddings: VGGish drops an incomplete trailing 0.96 s example (the original does, and so does
the scene embedding, the model's own), so its frames could stop up to ~1 s before the end of the audio, which
hear-validator flags (an error when the last timestamp is more than two hops before the end: a 1.9 s clip
stopped at 887.5 ms). Here the clip is zero-padded to a whole number of examples first, and frames centred past
the audio's end are dropped: the last timestamp is within one 160 ms hop of the end.
"""

import numpy as np
import torch

from ..chunking import (DEFAULT_CHUNK_LENGTH_S, DEFAULT_MEMORY_BUDGET_GIB, base_model, chunk_length, embed_long_clip,
                        whole_clip_gib)
from ..cli.model_source import check_model_source, load_pretrained
from ..hub.publish import hub_id
from ..inference import embed

DEFAULT_VARIANT = "efficientat-mn04-as-fusion-12-14"  # the published variant in modeling_fusion/hub/configs/
DEFAULT_MODEL = hub_id(DEFAULT_VARIANT)  # its Hub repository (owner/name), where `hub build --push` publishes it
OPTIONS = ("memory_budget_gib", "chunk_length_s")
PROBE_SECONDS = 2.0  # audio used once at load time to read the embedding sizes


class HearModel(torch.nn.Module):
    """A base model of this package and its feature extractor, with HEAR's attributes.

    sample_rate: the extractor's rate in Hz; scene_embedding_size: width of `pooler_output`;
    timestamp_embedding_size: width of the fused frames; frame_hop_ms: ms between timestamps (exact).
    memory_budget_gib, chunk_length_s: as in `chunking.embed_long_clip` (a clip whose whole-clip pass would need
    more than the budget runs in chunks).
    """

    def __init__(self, model, feature_extractor, memory_budget_gib=DEFAULT_MEMORY_BUDGET_GIB, chunk_length_s=None):
        super().__init__()
        self.model = base_model(model).eval()
        self.feature_extractor = feature_extractor
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.spec = self.model.config.chunk_spec(feature_extractor)
        self.memory_budget_gib = memory_budget_gib
        self.chunk_length_s = chunk_length_s
        self.frame_hop_ms = self.spec.frame_hop * 1000.0 / self.sample_rate
        probe = embed_long_clip(self.model, feature_extractor, np.zeros(int(PROBE_SECONDS * self.sample_rate),
                                                                        dtype=np.float32))
        self.scene_embedding_size = int(probe.pooler_output.shape[-1])
        self.timestamp_embedding_size = int(probe.last_hidden_state.shape[-1])

    def timestamps_ms(self, num_frames):
        """float64 [num_frames] centres of fused frames in ms."""
        return self.spec.timestamps_ms(num_frames, self.sample_rate)


def load_model(model_file_path="", **options):
    """HEAR's loader: `model_file_path` is a converted model folder or a Hub id (default `DEFAULT_MODEL`).

    options: memory_budget_gib (a clip whose whole-clip pass would need more runs in bounded-memory chunks;
    default 1; None: always whole), chunk_length_s (the chunks' length in seconds; default: as long as the
    budget holds). Returns a `HearModel` (a torch.nn.Module) in eval mode on the CPU.
    Raises ValueError for unknown options or a model that cannot be loaded.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"load_model: unknown option(s) {unknown}; supported: {list(OPTIONS)}")
    model_id = str(model_file_path or DEFAULT_MODEL)
    if model_file_path:
        check_model_source(model_id)  # a missing folder or unreachable Hub id: one clear line
    model, extractor = load_pretrained(
        model_id, f"Give a converted model folder (e.g. built with `python -m modeling_fusion.hub build "
        f"{DEFAULT_VARIANT} --checkpoint CKPT --output DIR`) or a Hub id; offline, the default {DEFAULT_MODEL} "
        "loads only once it is in the local Hub cache (`hf download`).")
    return HearModel(model, extractor, options.get("memory_budget_gib", DEFAULT_MEMORY_BUDGET_GIB),
                     options.get("chunk_length_s"))


def _clips(audio, name):
    if not isinstance(audio, torch.Tensor):
        audio = torch.as_tensor(np.asarray(audio))
    if audio.ndim != 2:
        raise ValueError(f"{name}: audio must be [n_sounds, n_samples], got shape {tuple(audio.shape)}")
    if audio.shape[0] == 0:
        raise ValueError(f"{name}: got no sounds (shape {tuple(audio.shape)}); give at least one.")
    return audio.detach().float().cpu().numpy()


def _outputs(clips, model, return_frames):
    """Yield (rows, AudioFusionOutput) over `clips` [n, N]: one chunked clip at a time when a clip's whole-clip
    pass exceeds the memory budget (`chunking.chunk_length`), else whole-clip batches within the budget (at least
    one clip; without a stated cost, at most `chunk_length_s` or 30 s of audio in all)."""
    length = clips.shape[1]
    fe = model.feature_extractor
    if chunk_length(model.model, fe, length, model.chunk_length_s, model.memory_budget_gib) is not None:
        for row in range(len(clips)):
            yield [row], embed_long_clip(model.model, fe, clips[row], model.chunk_length_s, return_frames=return_frames,
                                         memory_budget_gib=model.memory_budget_gib)
        return
    cost = whole_clip_gib(model.model.config, length, model.sample_rate)
    if cost is not None:
        group = len(clips) if model.memory_budget_gib is None else int(model.memory_budget_gib // max(cost, 1e-9))
    else:
        limit = (model.chunk_length_s or DEFAULT_CHUNK_LENGTH_S) * model.sample_rate
        group = int(limit // max(length, 1))
    group = max(1, min(group, len(clips)))
    for first in range(0, len(clips), group):
        rows = list(range(first, min(first + group, len(clips))))
        yield rows, embed(model.model, model.feature_extractor, list(clips[rows]), model.sample_rate)


def get_timestamp_embeddings(audio, model):
    """audio [n, samples] float in [-1, 1] at `model.sample_rate` (torch, any device; equal lengths).

    Returns (embeddings float32 [n, T, timestamp_embedding_size], timestamps float32 [n, T] in ms at
    frame centres, regularly spaced by `model.frame_hop_ms`, all within the audio), on `audio`'s device.
    Raises ValueError for audio that is not 2-D or shorter than the model accepts.
    """
    device, clips, frames = _per_clip(audio, model, "get_timestamp_embeddings", "last_hidden_state",
                                      pad=_whole_examples)
    times = model.timestamps_ms(frames[0].shape[0])
    # VGGish: the clip was zero-padded to whole examples; frames centred past the audio's end are dropped
    inside = int(np.searchsorted(times, clips.shape[1] * 1000.0 / model.sample_rate, side="right"))
    # one clip (hear-eval-kit's batch for clips over 108 s) is returned without a copy
    stacked = frames[0][None] if len(frames) == 1 else torch.stack(frames)
    embeddings = stacked[:, :inside].to(device)
    times = torch.from_numpy(times[:inside]).float().to(device)  # float32 as HEAR's API says; exact in float64 first
    return embeddings, times.expand(len(clips), -1).contiguous()


def get_scene_embeddings(audio, model):
    """audio [n, samples] as for `get_timestamp_embeddings` -> float32 [n, scene_embedding_size] on
    `audio`'s device: the model's `pooler_output` for each clip."""
    device, _, scenes = _per_clip(audio, model, "get_scene_embeddings", "pooler_output")
    return torch.stack(scenes).to(device)


def _whole_examples(clips, feature_extractor):
    """clips [n, N] zero-padded at their end to a whole number of examples for an extractor that drops an
    incomplete trailing example (VGGish: 0.975 s examples every 0.96 s); other extractors' clips as they are."""
    if getattr(feature_extractor, "pad_end", True):  # YAMNet pads its end itself; CNNs have no examples
        return clips
    hop = feature_extractor.example_hop_frames * feature_extractor.hop_length
    extra = max(clips.shape[1] - feature_extractor.example_samples, 0)
    padded = feature_extractor.example_samples + -(-extra // hop) * hop
    return np.pad(clips, ((0, 0), (0, max(padded - clips.shape[1], 0))))


def _per_clip(audio, model, name, field, pad=None):
    """(device of `audio`, clips [n, N] numpy, each clip's float32 `field` of the model's output on
    `pad(clips, feature_extractor)`, or on the clips themselves)."""
    device = audio.device if isinstance(audio, torch.Tensor) else torch.device("cpu")
    clips = _clips(audio, name)
    values = [None] * len(clips)
    inputs = clips if pad is None else pad(clips, model.feature_extractor)
    for rows, out in _outputs(inputs, model, return_frames=field == "last_hidden_state"):
        for index, row in enumerate(rows):
            values[row] = getattr(out, field)[index].float()
    return device, clips, values
