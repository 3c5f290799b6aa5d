"""Steady-state throughput of fusion-eval's input side on a machine: per-clip decode + resample in one
process, the DataLoader with W workers (pinned or not, batch 64 or 16), and CNN14 end to end (bf16 on a GPU)
vs the model alone, over `--repeat` passes of `--clips` 10 s noise files (16 kHz -> 32 kHz), so that every
worker gets many batches (gpu_check.sh's 1024 clips give 15 workers one batch each: start-up, not throughput).

    python benchmarks/loader_probe.py --workdir W [--clips 512] [--repeat 8] [--output probe.md]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_check import noise_folder  # noqa: E402

from fusion_eval.clips import ClipDataset, keep_batch  # noqa: E402
from fusion_eval.datasource import load_table  # noqa: E402
from fusion_eval.tasks import resolve_task  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--output")
    args = parser.parse_args()

    def say(line):
        print(line, flush=True)
        if args.output:
            with open(args.output, "a") as out:
                out.write(line + "\n")

    started = time.perf_counter()
    folder = noise_folder(Path(args.workdir) / f"noise-10s-{args.clips}", args.clips, 10.0)  # run_extract's too
    table = load_table(resolve_task(folder, unit_sec=10.0), args.workdir, 32000)
    say(f"{os.cpu_count()} cores; {args.clips} clips of 10 s written and indexed in {time.perf_counter() - started:.1f} s")
    rows = np.tile(np.arange(args.clips), args.repeat)
    dataset = ClipDataset(table, rows, "start", 320000, 42)
    t = time.perf_counter()
    batch = dataset.__getitems__(list(range(min(64, len(dataset)))))
    say(f"one process: {(time.perf_counter() - t) / len(batch['rows']) * 1e3:.2f} ms per clip (decode + soxr 16->32 kHz "
        "+ fix length into the batch)")
    say("| workers | batch | pin | clips/s |")
    say("|---|---|---|---|")
    for workers, batch, pin in ((15, 64, True), (15, 64, False), (15, 16, True), (8, 64, True), (4, 64, True)):
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=keep_batch,
                                             pin_memory=pin and torch.cuda.is_available())
        t = time.perf_counter()
        count = sum(len(b["rows"]) for b in loader)
        say(f"| {workers} | {batch} | {pin} | {count / (time.perf_counter() - t):.0f} |")
    from accelerate import Accelerator
    from gpu_check import model_alone, run_extract

    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    precision = "bf16" if torch.cuda.is_available() else "fp32"
    work = Path(args.workdir)
    run_extract(accelerator, "cnn14", 64, 10.0, 64, work, work / "probe-warm")
    embedder, cache, taken, _, unit = run_extract(accelerator, "cnn14", args.clips, 10.0, 64, work, work / "probe-cache",
                                                  args.repeat)
    alone = model_alone(embedder, accelerator.device, precision, unit, 64, max(1, len(rows) // 64))
    say(f"CNN14 {precision}, {len(rows)} clips: end to end {len(rows) / taken:.0f} clips/s, model alone {alone:.0f}, "
        f"ratio {len(rows) / taken / alone:.2f}")


if __name__ == "__main__":
    main()
