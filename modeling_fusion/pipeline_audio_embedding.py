"""The "audio-embedding" pipeline: clip embeddings (optionally per-frame and per-layer features).

transformers' "feature-extraction" pipeline is text-only, so every model folder of this package
ships this one through `custom_pipelines`:

    pipe = pipeline("audio-embedding", model=DIR_OR_REPO, trust_remote_code=True)
    pipe("clip.wav")["embedding"]                        # [D]
    pipe(array, per_frame=True, per_layer=True)          # + "frames" [T, D], "layers" [[D_l], ...]

Inputs: anything `audio_input.load_audio` takes: a file path or bytes (decoded with soundfile), a
numpy/torch array at the model's rate ([N], [C, N] or [N, C], float or integer PCM), a dict
{"array"/"raw", "sampling_rate"} such as a `datasets` row's audio, or a torchcodec AudioDecoder.
Channels are averaged and other rates resampled with soxr (HQ), exactly as in `fusion-embed` and
`fusion-eval`, so the three give the same embedding for the same audio.

Long clips: a clip whose whole-clip pass would need more than `memory_budget_gib` (default 1 GiB; None:
never) is embedded in overlapping chunks with memory independent of its length (`chunking.embed_long_clip`,
exact but for AST's windows); clips that fit run whole, exactly as the model computes them.
`chunk_length_s` sets the chunks' length (default: as long as the budget holds; for encoder fusion, which states
no cost, clips longer than it, default 30 s, run in chunks; 0: never). `pipe(x, memory_budget_gib=4)` or
`pipeline(..., memory_budget_gib=4)`. Long clips need `batch_size=1` (the default).
"""

import os

import torch
from transformers import Pipeline

from .audio_input import load_audio
from .chunking import DEFAULT_MEMORY_BUDGET_GIB, chunk_length, embed_long_clip
from .inference import features


class AudioEmbeddingPipeline(Pipeline):
    """Audio -> {"embedding": [D]} (+ "frames" [T, D] with per_frame, "layers" with per_layer)."""

    _load_feature_extractor = True
    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False

    def _sanitize_parameters(self, per_frame=None, per_layer=None, chunk_length_s=None, sampling_rate=None,
                             **kwargs):
        # memory_budget_gib=None (never chunk) differs from not given: taken from kwargs
        budget = {"memory_budget_gib": kwargs.pop("memory_budget_gib")} if "memory_budget_gib" in kwargs else {}
        if kwargs:
            raise ValueError(
                f"audio-embedding pipeline: unknown argument(s) {sorted(kwargs)}; it takes per_frame, per_layer, "
                "memory_budget_gib, chunk_length_s and sampling_rate (Hz of a bare array input)."
            )
        pre, forward, post = budget, {}, {}
        if chunk_length_s is not None:
            pre["chunk_length_s"] = chunk_length_s
        if sampling_rate is not None:
            pre["sampling_rate"] = sampling_rate
        if per_frame is not None:
            forward["per_frame"] = post["per_frame"] = per_frame
        if per_layer is not None:
            forward["per_layer"] = post["per_layer"] = per_layer
        return pre, forward, post

    def preprocess(self, inputs, chunk_length_s=None, sampling_rate=None, memory_budget_gib=DEFAULT_MEMORY_BUDGET_GIB):
        rate = self.feature_extractor.sampling_rate
        if sampling_rate is not None and not hasattr(inputs, "shape") and not isinstance(inputs, (list, tuple)):
            raise ValueError(
                "audio-embedding pipeline: sampling_rate= is the rate of a bare array input; a file, bytes, dict "
                "or decoder carries its own rate."
            )
        if isinstance(inputs, (str, os.PathLike)) and os.path.isdir(inputs):
            raise ValueError(
                f"audio-embedding pipeline: {inputs} is a folder; the pipeline embeds one clip per input (a file, "
                f"bytes, an array or a dict). For a folder of audio run `fusion-embed MODEL {inputs} --output "
                "embeddings.npz`, or pass the pipeline a list of its files."
            )
        name = None if isinstance(inputs, (str, os.PathLike)) else "pipeline input"
        wave = load_audio(inputs, rate, source_rate=sampling_rate, name=name,
                          min_samples=getattr(self.feature_extractor, "min_samples", None))
        if chunk_length(self.model, self.feature_extractor, len(wave), chunk_length_s, memory_budget_gib) is not None:
            return {"long_audio": wave, "chunk_length_s": chunk_length_s, "memory_budget_gib": memory_budget_gib}
        # the one embed step's features: on the model's device, but on the CPU in DataLoader workers (num_workers > 0)
        device = self.model.device if torch.utils.data.get_worker_info() is None else torch.device("cpu")
        return features(self.feature_extractor, [wave], rate, device)

    def _forward(self, model_inputs, per_layer=False, per_frame=False):
        if "long_audio" in model_inputs:
            out = embed_long_clip(self.model, self.feature_extractor, model_inputs["long_audio"],
                                  model_inputs["chunk_length_s"], output_hidden_states=per_layer,
                                  return_frames=per_frame, memory_budget_gib=model_inputs["memory_budget_gib"])
        else:
            out = self.model(**model_inputs, output_hidden_states=per_layer)
        # one tensor per key, batch first: batched pipelines split each key per item (a tuple of per-layer
        # tensors would be split along the layers instead)
        result = {"pooler_output": out.pooler_output}
        if per_frame:
            result["last_hidden_state"] = out.last_hidden_state
            if out.frame_mask is not None:
                result["frame_mask"] = out.frame_mask
        if per_layer:
            result.update({f"layer_{index}": pooled for index, pooled in enumerate(out.pooled_hidden_states)})
        return result

    def postprocess(self, out, per_frame=False, per_layer=False):
        result = {"embedding": out["pooler_output"][0].float().cpu().numpy()}
        if per_frame:
            frames = out["last_hidden_state"][0]
            mask = out.get("frame_mask")
            result["frames"] = (frames if mask is None else frames[mask[0]]).float().cpu().numpy()
        if per_layer:
            count = sum(key.startswith("layer_") for key in out)
            result["layers"] = [out[f"layer_{index}"][0].float().cpu().numpy() for index in range(count)]
        return result
