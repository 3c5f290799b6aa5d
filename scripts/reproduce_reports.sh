#!/usr/bin/env bash
# Regenerates every measured number the project publishes, from today's code, into reports/:
#   reports/efficientat_mn04/  real EfficientAT mn04_as, fusion chosen on validation (--select-fusion)
#   reports/yamnet/            real YAMNet, the same command
#   reports/random_cnn14/      random-weight CNN14-Fusion#3#6 --sweep (scripts/run_random_sweep.sh)
# Each folder is fusion-eval's own output (results.json, results.md, layers.png, model_index.yaml, and with
# --select-fusion selection.png + selected_fusion.json); tests/test_reports.py fails when a committed
# results.md / model_index.yaml / selected_fusion.json no longer matches its committed results.json.
# The model folders are then rebuilt with --results, so their cards' model-index is these numbers.
#
#     bash scripts/reproduce_reports.sh            # from the repository root, ../shared beside it
#     SKIP_RANDOM=1 bash scripts/reproduce_reports.sh   # without the random CNN14 sweep (61 min alone)
#
# Run time on 2 CPU cores: see the per-run "timings" in each results.json (total_seconds) and
# fusion_eval/README.md. DATA, WEIGHTS, MODELS (folders to create) and CACHE can be set in the environment.
set -euo pipefail
DATA=${DATA:-../shared/data}
WEIGHTS=${WEIGHTS:-../shared/weights}
MODELS=${MODELS:-models}  # git-ignored, relative: the reports record the model path as given
CACHE=${CACHE:-${FUSION_EVAL_CACHE:-$HOME/.cache/fusion_eval}}
TASKS=(fsdd spcv2-test-folds us8k-3folds)
PROBES=(linear knn)

build() {  # variant checkpoint labels folder [--results results.json]
    python -m modeling_fusion.hub build "$1" --checkpoint "$WEIGHTS/$2" --labels "$WEIGHTS/$3" --output "$MODELS/$4" "${@:5}"
}
evaluate() {  # folder report
    fusion-eval --model "$MODELS/$1" --task "${TASKS[@]}" --data-dir "$DATA" --cache-dir "$CACHE" \
        --select-fusion --probe "${PROBES[@]}" --output "reports/$2"
}

build efficientat-mn04-as-fusion-12-14 efficientat_mn04_as.pt audioset_labels.csv mn04
build yamnet-fusion-6-14 yamnet.tflite yamnet_class_map.csv yamnet
evaluate mn04 efficientat_mn04
evaluate yamnet yamnet
build efficientat-mn04-as-fusion-12-14 efficientat_mn04_as.pt audioset_labels.csv mn04 --results reports/efficientat_mn04/results.json
build yamnet-fusion-6-14 yamnet.tflite yamnet_class_map.csv yamnet --results reports/yamnet/results.json
if [ -z "${SKIP_RANDOM:-}" ]; then
    DATA="$DATA" bash scripts/run_random_sweep.sh
fi
