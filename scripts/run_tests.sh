#!/usr/bin/env bash
# The test suite, offline (the Hub is never contacted; ../shared beside the repo supplies real data).
# Arguments go to pytest; test paths among them replace the default `tests` (e.g. tests/test_hear_xares.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
paths=(tests)
for argument in "$@"; do
  case "$argument" in tests/*|./tests/*) paths=() ;; esac
done
python -m pytest "${paths[@]}" -q -p no:cacheprovider "$@"
