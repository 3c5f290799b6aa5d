"""An X-ARES encoder (jimbozhang/xares) for every model of this package, usable as X-ARES's encoder file:

    FUSION_XARES_MODEL=models/efficientat-mn04 python -m xares.run --max-jobs 1 modeling_fusion/harness/xares.py src/tasks/*.py

X-ARES turns the file path into a module name (modeling_fusion.harness.xares: run it from X-ARES's checkout with
this package installed) and builds the module's one attribute whose name ends in "Encoder" with no
arguments, so the model comes from the environment variable FUSION_XARES_MODEL (a converted folder or a
Hub id; default: the published variant's Hub repository `hear.DEFAULT_MODEL`). Frames are the fused per-frame features
(`last_hidden_state`), as HEAR's timestamp embeddings, through the bounded-memory chunked path for long
clips (X-ARES asks for up to 10 minutes). X-ARES resamples with torchaudio and mean-pools frames, so its
scores are not comparable number for number with `fusion-eval` (soxr, mean+max).
"""

import os

import torch

# absolute import: X-ARES may load this file by its path, outside the package
from modeling_fusion.harness.hear import DEFAULT_MODEL, get_timestamp_embeddings, load_model

MODEL_VARIABLE = "FUSION_XARES_MODEL"


class FusionEncoder(torch.nn.Module):
    """X-ARES encoder: forward(audio [B, T] float at `sampling_rate` Hz) -> [B, T', output_dim] float32.

    Attributes: sampling_rate (Hz), output_dim (fused frame width), hop_size_in_ms (exact frame hop:
    320 CNN14 / EfficientAT / YAMNet, 160 VGGish, 100 AST). Raises ValueError when the model cannot be loaded.
    """

    def __init__(self):
        super().__init__()
        self.fusion = load_model(os.environ.get(MODEL_VARIABLE) or DEFAULT_MODEL)
        self.sampling_rate = self.fusion.sample_rate
        self.output_dim = self.fusion.timestamp_embedding_size
        self.hop_size_in_ms = self.fusion.frame_hop_ms

    def forward(self, audio):
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        return get_timestamp_embeddings(audio, self.fusion)[0]
