#!/usr/bin/env bash
# Regenerates every measured number the project publishes, from today's code, into reports/:
#   efficientat_mn04  real EfficientAT mn04_as, fusion chosen on validation (--select-fusion)
#   yamnet            real YAMNet, the same command
#   random_cnn14      random-weight CNN14-Fusion#3#6 --sweep (scripts/run_random_sweep.sh)
#   efficientat_mn04_fsdd_mlp, yamnet_fsdd_mlp
#                     the same command with HEAR's MLP probe too (--probe linear mlp knn), at the scale a
#                     2-core CPU affords: FSDD digits only, seed 42 (the three tasks x 3 seeds take hours there)
# Each folder is fusion-eval's own output (results.json, results.md, layers.png, model_index.yaml, and with
# --select-fusion selection.png + selected_fusion.json); tests/test_reports.py fails when a committed
# results.md / model_index.yaml / selected_fusion.json no longer matches its committed results.json.
# The model folders are then rebuilt with --results, so their cards' model-index is these numbers.
#
#     bash scripts/reproduce_reports.sh                   # all three, from the repository root, ../shared beside it
#     bash scripts/reproduce_reports.sh yamnet            # only the named reports
#
# Each report's wall time is printed at its end and kept in its results.json ("timings"); the measured
# totals on 2 CPU cores are in fusion_eval/README.md. DATA, WEIGHTS, MODELS (folders to create) and CACHE
# can be set in the environment.
set -euo pipefail
DATA=${DATA:-../shared/data}
WEIGHTS=${WEIGHTS:-../shared/weights}
MODELS=${MODELS:-models}  # git-ignored, relative: the reports record the model path as given
CACHE_ARGS=()  # fusion-eval's default cache ($FUSION_EVAL_CACHE, else ~/.cache/fusion_eval) unless CACHE is set
[ -z "${CACHE:-}" ] || CACHE_ARGS=(--cache-dir "$CACHE")
TASKS=(fsdd spcv2-test-folds us8k-3folds)
PROBES=(linear knn)
REPORTS=("$@")
[ ${#REPORTS[@]} -gt 0 ] || REPORTS=(efficientat_mn04 yamnet random_cnn14 efficientat_mn04_fsdd_mlp yamnet_fsdd_mlp)

build() {  # variant checkpoint labels folder [--results results.json]
    python -m modeling_fusion.hub build "$1" --checkpoint "$WEIGHTS/$2" --labels "$WEIGHTS/$3" --output "$MODELS/$4" "${@:5}"
}
evaluate() {  # variant checkpoint labels folder report
    build "$1" "$2" "$3" "$4"
    fusion-eval --model "$MODELS/$4" --task "${TASKS[@]}" --data-dir "$DATA" "${CACHE_ARGS[@]}" \
        --select-fusion --probe "${PROBES[@]}" --output "reports/$5"
    build "$1" "$2" "$3" "$4" --results "reports/$5/results.json"
}
with_mlp() {  # variant checkpoint labels folder report (the folder evaluate built and carded is kept)
    [ -d "$MODELS/$4" ] || build "$1" "$2" "$3" "$4"
    fusion-eval --model "$MODELS/$4" --task fsdd --data-dir "$DATA" "${CACHE_ARGS[@]}" --select-fusion \
        --probe linear mlp knn --seeds 42 --output "reports/$5"
}
MN04=(efficientat-mn04-as-fusion-12-14 efficientat_mn04_as.pt audioset_labels.csv mn04)
YAMNET=(yamnet-fusion-6-14 yamnet.tflite yamnet_class_map.csv yamnet)

for report in "${REPORTS[@]}"; do
    SECONDS=0
    case "$report" in
        efficientat_mn04) evaluate "${MN04[@]}" "$report" ;;
        yamnet) evaluate "${YAMNET[@]}" "$report" ;;
        random_cnn14) DATA="$DATA" bash scripts/run_random_sweep.sh ;;
        efficientat_mn04_fsdd_mlp) with_mlp "${MN04[@]}" "$report" ;;
        yamnet_fsdd_mlp) with_mlp "${YAMNET[@]}" "$report" ;;
        *) echo "unknown report '$report': choose from efficientat_mn04 yamnet random_cnn14" \
                "efficientat_mn04_fsdd_mlp yamnet_fsdd_mlp" >&2; exit 2 ;;
    esac
    echo "reports/$report: ${SECONDS} s"
done
