"""The "audio-embedding" pipeline: clip embeddings (optionally per-frame and per-layer features).

transformers' "feature-extraction" pipeline is text-only, so every model folder of this package
ships this one through `custom_pipelines`:

    pipe = pipeline("audio-embedding", model=DIR_OR_REPO, trust_remote_code=True)
    pipe("clip.wav")["embedding"]                        # [D]
    pipe(array, per_frame=True, per_layer=True)          # + "frames" [T, D], "layers" [[D_l], ...]

Inputs: a file path or bytes (decoded and resampled by the ffmpeg CLI), a 1-D array at the model's
rate, {"array"/"raw", "sampling_rate"} dicts such as `datasets` rows' audio, or torchcodec
AudioDecoder objects; other rates are resampled with ffmpeg.
"""

import subprocess

import numpy as np
import torch
from transformers import Pipeline
from transformers.pipelines.audio_utils import ffmpeg_read


def resample_with_ffmpeg(audio, rate, target_rate):
    """Mono float32 [N] at `rate` -> at `target_rate`, through the ffmpeg CLI's resampler."""
    command = ["ffmpeg", "-loglevel", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
               "-ar", str(target_rate), "-f", "f32le", "pipe:1"]
    try:
        result = subprocess.run(command, input=np.asarray(audio, np.float32).tobytes(), capture_output=True, check=True)
    except FileNotFoundError:
        raise ValueError(f"audio at {rate} Hz needs resampling to {target_rate} Hz: install ffmpeg, or resample "
                         f"first (e.g. datasets' Audio(sampling_rate={target_rate}))") from None
    return np.frombuffer(result.stdout, dtype=np.float32)


class AudioEmbeddingPipeline(Pipeline):
    """Audio -> {"embedding": [D]} (+ "frames" [T, D] with per_frame, "layers" with per_layer)."""

    _load_feature_extractor = True
    _load_tokenizer = False
    _load_processor = False
    _load_image_processor = False

    def _sanitize_parameters(self, per_frame=None, per_layer=None, **kwargs):
        forward, post = {}, {}
        if per_frame is not None:
            post["per_frame"] = per_frame
        if per_layer is not None:
            forward["per_layer"] = post["per_layer"] = per_layer
        return {}, forward, post

    def preprocess(self, inputs):
        rate = self.feature_extractor.sampling_rate
        if isinstance(inputs, str):
            with open(inputs, "rb") as handle:
                inputs = handle.read()
        if isinstance(inputs, bytes):
            inputs = ffmpeg_read(inputs, rate)
        if hasattr(inputs, "get_all_samples"):  # torchcodec AudioDecoder, e.g. from a datasets row
            samples = inputs.get_all_samples()
            inputs = {"array": samples.data.mean(dim=0).numpy(), "sampling_rate": samples.sample_rate}
        if isinstance(inputs, dict):
            if "sampling_rate" not in inputs or not ("array" in inputs or "raw" in inputs):
                raise ValueError('a dict input needs "array" (or "raw") and "sampling_rate", like a datasets row')
            audio = inputs["array"] if "array" in inputs else inputs["raw"]
            audio = audio.cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
            if inputs["sampling_rate"] != rate:
                audio = resample_with_ffmpeg(audio, inputs["sampling_rate"], rate)
            inputs = audio
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.cpu().numpy()
        return self.feature_extractor(inputs, sampling_rate=rate, return_tensors="pt")

    def _forward(self, model_inputs, per_layer=False):
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
