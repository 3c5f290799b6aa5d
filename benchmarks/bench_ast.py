"""AST-Fusion whole-clip mode vs transformers' ASTModel padded to 1024 frames: speed and peak memory.

    python benchmarks/bench_ast.py [--seconds 1 10 30] [--threads 2]

Full-size AST (768-d, 12 blocks) with random weights, CPU, batch of one clip, model forward only
(fbank precomputed). "ours" = AstFusionModel, fusion of blocks 5 + 12, the clip at its own length
(position embeddings adapted); "padded" = ASTModel on the standard input, zero-padded or truncated to
1024 frames (a 30 s clip is cut to its first 10.24 s). Both use SDPA attention. Times are the fastest
of several alternating calls (wall clock, and CPU time of all threads); peak memory is the rise of the
process's resident set during one forward (Linux VmHWM, reset through /proc/self/clear_refs). Ratios are
padded / ours (> 1: ours is better).
"""

import argparse
import ctypes
import re
import time

import numpy as np
import torch
from transformers import ASTConfig, ASTModel

from modeling_fusion import AstFusionConfig, AstFusionFeatureExtractor, AstFusionModel


def _memory_kib(field):
    return int(re.search(rf"{field}:\s+(\d+)", open("/proc/self/status").read()).group(1))


def peak_memory_mib(run):
    """Resident-set rise (MiB) while `run()` executes."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset VmHWM to the current RSS
    baseline = _memory_kib("VmRSS")
    run()
    return (_memory_kib("VmHWM") - baseline) / 1024


def best_seconds(runs, repeats):
    """Fastest wall and process-CPU time of `repeats` calls of each function, called alternately after one
    warm-up each. On a shared machine the minimum is the least disturbed measurement, and CPU time (all
    threads) is not inflated by waiting for a core."""
    best_wall, best_cpu = [float("inf")] * len(runs), [float("inf")] * len(runs)
    for run in runs:
        run()
    for _ in range(repeats):
        for index, run in enumerate(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            best_wall[index] = min(best_wall[index], time.perf_counter() - wall)
            best_cpu[index] = min(best_cpu[index], time.process_time() - cpu)
    return best_wall, best_cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 10.0, 30.0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    padded_model = ASTModel(ASTConfig()).eval()
    ours = AstFusionModel(AstFusionConfig()).eval()
    ours.ast.load_state_dict(padded_model.state_dict())
    whole = AstFusionFeatureExtractor()
    standard = AstFusionFeatureExtractor(pad_to_max_length=True, return_attention_mask=False)
    rng = np.random.default_rng(0)

    print(f"torch {torch.__version__}, {args.threads} threads, attention: {ours.ast.config._attn_implementation}")
    header = ("clip", "frames", "tokens", "ours ms", "padded ms", "speed ratio", "ours CPU ms", "padded CPU ms",
              "CPU ratio", "ours MiB", "padded MiB", "mem ratio")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for seconds in args.seconds:
        audio = (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
        clip_input = whole(audio, sampling_rate=16000, return_tensors="pt")["input_values"]
        padded_input = standard(audio, sampling_rate=16000, return_tensors="pt")["input_values"]
        tokens = 2 + 12 * ((clip_input.shape[1] - 16) // 10 + 1)
        repeats = max(3, int(10 / seconds))

        @torch.no_grad()
        def run_ours():
            return ours(clip_input).pooler_output

        @torch.no_grad()
        def run_padded():
            return padded_model(padded_input).pooler_output

        (time_ours, time_padded), (cpu_ours, cpu_padded) = best_seconds([run_ours, run_padded], repeats)
        memory_ours, memory_padded = peak_memory_mib(run_ours), peak_memory_mib(run_padded)
        print(f"{seconds:g} s | {clip_input.shape[1]} | {tokens} | {1000 * time_ours:.0f} | {1000 * time_padded:.0f} | "
              f"{time_padded / time_ours:.2f} | {1000 * cpu_ours:.0f} | {1000 * cpu_padded:.0f} | "
              f"{cpu_padded / cpu_ours:.2f} | {memory_ours:.0f} | {memory_padded:.0f} | "
              f"{memory_padded / memory_ours:.2f}")


if __name__ == "__main__":
    main()
