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

Long clips: a clip longer than `chunk_length_s` seconds (default 30; None or 0: never) is embedded in
overlapping chunks with memory independent of its length (`chunking.embed_long_clip`); shorter clips
run whole, exactly as before. `pipe(x, chunk_length_s=60)` or `pipeline(..., chunk_length_s=60)`.
Long clips need `batch_size=1` (the default).
"""

import os

from transformers import Pipeline

from .audio_input import load_audio
from .chunking import DEFAULT_CHUNK_LENGTH_S, embed_long_clip


class AudioEmbeddingPipeline(Pipeline):
    """Audio -> {"embedding": [D]} (+ "frames" [T, D] with per_frame, "layers" with per_layer)."""

    _load_feature_extractor = True
    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False

    def _sanitize_parameters(self, per_frame=None, per_layer=None, chunk_length_s=None, **kwargs):
        pre, forward, post = {}, {}, {}
        if chunk_length_s is not None:
            pre["chunk_length_s"] = chunk_length_s
        if per_frame is not None:
            forward["per_frame"] = post["per_frame"] = per_frame
        if per_layer is not None:
            forward["per_layer"] = post["per_layer"] = per_layer
        return pre, forward, post

    def preprocess(self, inputs, chunk_length_s=DEFAULT_CHUNK_LENGTH_S):
        rate = self.feature_extractor.sampling_rate
        wave = load_audio(inputs, rate, name=None if isinstance(inputs, (str, os.PathLike)) else "pipeline input")
        if chunk_length_s and len(wave) > chunk_length_s * rate:
            return {"long_audio": wave, "chunk_length_s": chunk_length_s}
        return self.feature_extractor(wave, sampling_rate=rate, return_tensors="pt")

    def _forward(self, model_inputs, per_layer=False, per_frame=False):
        if "long_audio" in model_inputs:
            return embed_long_clip(self.model, self.feature_extractor, model_inputs["long_audio"],
                                   model_inputs["chunk_length_s"], output_hidden_states=per_layer,
                                   return_frames=per_frame)
        return self.model(**model_inputs, output_hidden_states=per_layer)

    def postprocess(self, out, per_frame=False, per_layer=False):
        # batched pipelines rebuild the output per item, without its None fields
        mask = None if out.get("frame_mask") is None else out["frame_mask"][:1]
        result = {"embedding": out["pooler_output"][0].float().cpu().numpy()}
        if per_frame:
            frames = out["last_hidden_state"][0]
            result["frames"] = (frames if mask is None else frames[mask[0]]).float().cpu().numpy()
        if per_layer:
            result["layers"] = [layer[0].float().cpu().numpy() for layer in out["pooled_hidden_states"]]
        return result
