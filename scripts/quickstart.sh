#!/usr/bin/env bash
# The main job, offline: build the EfficientAT mn04 fusion model from the real AudioSet checkpoint in
# ../shared/weights, embed the Free Spoken Digit Dataset (../shared/data/fsdd) with fusion-embed, and tag
# two clips with the model's AudioSet head. SHARED=/path/to/shared overrides the location.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
VARIANT=efficientat-mn04-as-fusion-12-14
for needed in "$SHARED/weights/efficientat_mn04_as.pt" "$SHARED/data/fsdd/metadata.csv"; do
  [ -e "$needed" ] || { echo "error: $needed is missing: the offline quickstart needs ../shared beside the repo" >&2; exit 1; }
done
export HF_HUB_OFFLINE=1
python -m modeling_fusion.hub build "$VARIANT" --checkpoint "$SHARED/weights/efficientat_mn04_as.pt" \
    --labels "$SHARED/weights/audioset_labels.csv" --output models/efficientat-mn04
fusion-embed models/efficientat-mn04 "$SHARED/data/fsdd" --output outputs/fsdd_embeddings.npz --per-layer
python - "$SHARED" <<'PY'
import sys
from pathlib import Path

import numpy as np
from transformers import pipeline
from transformers.utils import logging

from modeling_fusion.audio_input import load_audio

logging.disable_progress_bar()  # no weight-loading bars in the log

tagger = pipeline("audio-classification", model="models/efficientat-mn04", trust_remote_code=True)
shared = Path(sys.argv[1])
for clip in sorted((shared / "data" / "urbansound8k_3folds" / "audio").glob("*/*.ogg"))[:2]:
    tags = tagger(load_audio(clip, tagger.feature_extractor.sampling_rate), top_k=3)
    print(f"{clip.name}: " + ", ".join(f"{t['label']} {t['score']:.2f}" for t in tags))
data = np.load("outputs/fsdd_embeddings.npz")
print(f"outputs/fsdd_embeddings.npz: embeddings {data['embeddings'].shape}, "
      f"{sum(k.startswith('layer_') for k in data.files)} per-layer arrays")
PY
