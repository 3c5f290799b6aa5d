#!/usr/bin/env bash
# The test suite, offline (the Hub is never contacted; ../shared beside the repo supplies real data).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m pytest tests -q -p no:cacheprovider "$@"
