#!/usr/bin/env bash
# GPU check (never part of CI): set up, front-end and model parity on the GPU, 1- vs 2-process extraction
# (same embeddings), and clips/s for the model alone and end to end (fusion-eval's extraction: DataLoader
# workers decoding, features on the GPU, model, gather, cache writes), fp32 and bf16, for CNN14 and AST
# (random weights, 10 s noise clips) and EfficientAT (random weights, real SPCV2 test clips). About 6 min
# on one H200.
#
#   bash benchmarks/gpu_check.sh                          # on a GPU machine (without one: the CPU smoke mode)
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh     # smoke mode: the same steps on the CPU, tiny sizes
#
# Writes gpu_check_<device>.md (summary), .json (the throughput figures) and .log (everything) to $GPU_CHECK_RESULTS (default
# benchmarks/results) as it goes, so a run cut short keeps what it measured. A failing step is reported and
# the next one runs; the exit status is non-zero if any failed. SPCV2 clips are looked up in
# $FUSION_EVAL_DATA_DIR, ../shared/data, or shared/data.
# Bounds: front ends as tests/test_frontends_torch.py; embeddings fp32 <= 1e-2 and bf16 <= 5e-2 of their
# largest magnitude (benchmarks/gpu_check.py); 1 and 2 processes store the same arrays (<= 1e-6 of the largest
# magnitude: both see the same batches, as EXTRACT_CLIPS fills an even number of them, so equal is expected).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${GPU_CHECK_DEVICE:-$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null)}
DEVICE=${DEVICE:-cuda}  # no torch yet: a GPU machine to set up (below)
RESULTS=${GPU_CHECK_RESULTS:-benchmarks/results}
mkdir -p "$RESULTS"
OUT=$RESULTS/gpu_check_${DEVICE}.md
LOG=$RESULTS/gpu_check_${DEVICE}.log
JSON=$RESULTS/gpu_check_${DEVICE}.json
rm -f "$JSON"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
exec > >(tee "$LOG") 2>&1
started=$SECONDS
failed=()
step() {  # step NAME COMMAND...: run it; on failure note it in the summary and go on
  local name=$1
  shift
  if ! "$@"; then
    failed+=("$name")
    printf '**%s failed** (see the log)\n\n' "$name" >> "$OUT"
  fi
}

if [ "$DEVICE" = cpu ]; then
  CLIPS=4 SPCV2_CLIPS=9 SECS=2 BATCH=4 EXTRACT_CLIPS=32 READS=2
else
  if ! python -c "import torch, modeling_fusion, fusion_eval, datasets, soxr; assert torch.cuda.is_available()" 2>/dev/null; then
    bash scripts/setup.sh || exit 1  # only when the environment is not ready: pip needs the network
  fi
  CLIPS=1024 SPCV2_CLIPS=2048 SECS=10 BATCH=64 EXTRACT_CLIPS=250 READS=4
fi
python -c "import torch, modeling_fusion, fusion_eval; assert '$DEVICE' == 'cpu' or torch.cuda.is_available(), 'no GPU'" \
  || exit 1
GPUS=$(python -c 'import torch; print(torch.cuda.device_count())')

{
  echo "# GPU check on $DEVICE ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  python -c 'import torch, transformers, accelerate, platform, os
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, transformers {transformers.__version__}, "
      f"accelerate {accelerate.__version__}, python {platform.python_version()}, {os.cpu_count()} CPU cores")'
  if [ "$DEVICE" != cpu ]; then nvidia-smi -L; fi
  echo
} > "$OUT"

echo "== 1. front ends on $DEVICE vs numpy (tests/test_frontends_torch.py tolerances)"
frontends() {
  FUSION_TEST_DEVICE=$DEVICE python -m pytest tests/test_frontends_torch.py -q -p no:cacheprovider | tee "$WORK/frontends.txt"
  local status=$?
  { echo "## Front ends on $DEVICE vs numpy"; echo; echo '```'; tail -n 1 "$WORK/frontends.txt"; echo '```'; echo; } >> "$OUT"
  return $status
}
step "front ends" frontends

echo "== 2. embeddings on $DEVICE (torch front end) vs CPU fp32 (numpy front end)"
parity() {
  python benchmarks/gpu_check.py parity --device "$DEVICE" --output "$WORK/parity.md"
  local status=$?
  { echo "## Model parity, random full-size models, 3 clips of 1.5-3 s"; echo; cat "$WORK/parity.md"; echo; } >> "$OUT"
  return $status
}
step "model parity" parity

echo "== 3. extraction with 1 and 2 processes (EfficientAT, $EXTRACT_CLIPS SPCV2 clips)"
extract_args=(extract --backbones efficientat --clips "$EXTRACT_CLIPS" --batch-size 16 --workdir "$WORK")
if [ "$DEVICE" != cpu ] && [ "$GPUS" -ge 2 ]; then
  two_process=(python -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no)
  where="2 GPUs"
  one_device=$DEVICE
  cpu_only=()
else  # one GPU cannot host two NCCL ranks: both runs on the CPU (gloo), the multi-process code path is the same
  two_process=(python -m torch.distributed.run --standalone --nproc-per-node 2)
  where="CPU (fewer than 2 GPUs)"
  one_device=cpu
  cpu_only=(env CUDA_VISIBLE_DEVICES=)  # else Accelerate's CPU barrier still names GPU ordinals, which rank 1 lacks
fi
one_vs_two() {  # one thread per process in both runs, so only the process count differs
  OMP_NUM_THREADS=1 "${cpu_only[@]}" python -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
    benchmarks/gpu_check.py "${extract_args[@]}" --device "$one_device" --output "$WORK/one.npz" &&
  OMP_NUM_THREADS=1 "${cpu_only[@]}" "${two_process[@]}" benchmarks/gpu_check.py "${extract_args[@]}" --device "$one_device" --output "$WORK/two.npz" &&
  python - "$WORK/one.npz" "$WORK/two.npz" "$where" >> "$OUT" <<'EOF'
import sys
import numpy as np
one, two = np.load(sys.argv[1]), np.load(sys.argv[2])
assert sorted(one.files) == sorted(two.files), (one.files, two.files)
bitwise = all(np.array_equal(one[k], two[k]) for k in one.files)
worst = max(np.abs(one[k] - two[k]).max() / np.abs(one[k]).max() for k in one.files)
shapes = ", ".join(f"{k} {one[k].shape}" for k in sorted(one.files))
verdict = "bitwise identical" if bitwise else f"max |difference| / max |value| {worst:.1e}"
print(f"## 1 vs 2 processes on {sys.argv[3]}\n\n{verdict}: {shapes}\n")
if worst > 1e-6:
    raise SystemExit("1- and 2-process extraction differ")
EOF
}
step "1 vs 2 processes" one_vs_two

echo "== 4. the extraction loop on $DEVICE (side-stream uploads, non-blocking copies back, store) vs direct embedding"
loop() {
  python benchmarks/gpu_check.py loop --device "$DEVICE" --clips "$EXTRACT_CLIPS" --workdir "$WORK" --output "$WORK/loop.md"
  local status=$?
  { echo "## Extraction loop vs the same batches embedded directly (EfficientAT, SPCV2, fp32; bound 1e-6)"; echo; cat "$WORK/loop.md"; echo; } >> "$OUT"
  return $status
}
step "extraction loop" loop

echo "== 5. clips/s, model alone vs end to end"
{
  echo "## Throughput (batch $BATCH; each clip read $READS times (EfficientAT: $((READS / 2))), so every DataLoader worker gets many batches)"
  echo
  echo "End to end decodes every clip (first pass); 'from the store' reads the prepared-audio store a first run filled."
  echo
  echo "| backbone | clips | precision | n | model alone clips/s | end to end clips/s | ratio | from the store clips/s | ratio | DataLoader alone clips/s (workers) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >> "$OUT"
for precision in fp32 bf16; do
  for backbone in cnn14 ast efficientat; do
    clips=$CLIPS reads=$READS
    if [ "$backbone" = efficientat ]; then clips=$SPCV2_CLIPS reads=$((READS / 2)); fi
    step "throughput $backbone $precision" \
      python benchmarks/gpu_check.py throughput --device "$DEVICE" --precision "$precision" --backbones "$backbone" \
      --clips "$clips" --repeat "$reads" --seconds "$SECS" --batch-size "$BATCH" --workdir "$WORK" --output "$OUT" \
      --json "$JSON"
  done
done
echo >> "$OUT"
echo "Total $((SECONDS - started)) s.${failed[*]:+ Failed: ${failed[*]}.}" >> "$OUT"
cat "$OUT"
[ ${#failed[@]} -eq 0 ]
