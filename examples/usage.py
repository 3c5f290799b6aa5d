"""The README's usage example: a model folder's clip embedding, per-frame and per-layer features, the
audio-embedding pipeline and the AudioSet tags, with audio read by the folder's own `load_audio`.

Runs as is beside a model folder `models/efficientat-mn04` and a file `clip.wav` (tests/test_docs.py runs it
where this package is not importable: everything comes from the folder's remote code).
"""

from transformers import AutoFeatureExtractor, AutoModel, pipeline
from transformers.dynamic_module_utils import get_class_from_dynamic_module

folder = "models/efficientat-mn04"
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
extractor = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
# The folder ships the package's one input path (files, bytes, arrays, dicts; channel mean; soxr to the model's
# rate); with the package installed it is also `from modeling_fusion.audio_input import load_audio`.
load_audio = get_class_from_dynamic_module("audio_input.load_audio", folder)
audio = load_audio("clip.wav", extractor.sampling_rate)  # mono float32 at the model's rate
out = model(**extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors="pt"),
            output_hidden_states=True)
out.pooler_output          # [1, D] fused clip embedding (mean+max)
out.last_hidden_state      # [1, T, D] fused per-frame features; out.frame_mask marks real frames
out.pooled_hidden_states   # per-layer clip embeddings: every single-layer probe from one pass

embed = pipeline("audio-embedding", model=folder, trust_remote_code=True)
embed("clip.wav", per_layer=True)                      # {"embedding", "layers"}
classify = pipeline("audio-classification", model=folder, trust_remote_code=True)
classify(audio, top_k=5)  # an array from load_audio: transformers decodes files with FFmpeg, other rates with torchaudio
