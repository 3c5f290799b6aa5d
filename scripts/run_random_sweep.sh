#!/usr/bin/env bash
# Full `fusion-eval --sweep` of CNN14-Fusion#3#6 with RANDOM weights on the three ../shared/data datasets.
# It proves the pipeline end to end; the numbers mean nothing about CNN14. Run from the repository root:
#
#     bash scripts/run_random_sweep.sh                      # writes reports/random_cnn14/
#     OUT=runs/dry bash scripts/run_random_sweep.sh --metadata-dir subset_metadata   # extra args go to fusion-eval
#
# DATA (default ../shared/data), OUT and MODEL (a folder to create) can be set in the environment.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-reports/random_cnn14}
MODEL=${MODEL:-models/random-cnn14}  # git-ignored, relative: the report records it as given
python scripts/make_random_cnn14.py --output "$MODEL" --seed 0
fusion-eval --model "$MODEL" --task fsdd fsdd-speaker spcv2-test-folds us8k-3folds --sweep \
    --data-dir "$DATA" --output "$OUT" "$@"
