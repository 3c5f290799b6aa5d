"""Random mini-batches from an on-disk embedding cache: positional reads vs memory maps, time and RSS.

    python benchmarks/bench_cache_reads.py [--chunks 100] [--dim 6144] [--batch 200]

Writes `--chunks` chunk files of 512 x `--dim` float32 (as fusion-eval's cache holds them) under
$TMPDIR, then gathers one epoch of random batches of `--batch` rows three ways: `CachedEmbeddings`
(the probe's reader: os.preadv into the batch), `np.load(mmap_mode="r")` of each chunk a batch needs,
dropped after the batch, and the same maps kept open and dropped every 20 batches. Prints ms per
batch and the peak RSS each way reached above the start (sampled every 5 ms; each way in a fresh
process, so one does not inherit another's mapped pages).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import PeakMemory  # noqa: E402

from fusion_eval.cache import ViewCache  # noqa: E402

CHUNK = 512


def gather_mapped(paths, positions, opened):
    out = np.empty((len(positions), opened["dim"]), np.float32)
    chunks = positions // CHUNK
    for chunk in np.unique(chunks):
        mask = chunks == chunk
        mapped = opened.get(chunk)
        if mapped is None:
            mapped = opened[chunk] = np.load(paths[chunk], mmap_mode="r")
        out[mask] = mapped[positions[mask] % CHUNK]
    return out


def run(directory, way, batch):
    cache = ViewCache(directory, np.arange(len(list(Path(directory).glob("*.x.npy"))) * CHUNK), CHUNK, {})
    embeddings = cache.embeddings("x")
    paths = embeddings.paths
    order = np.random.default_rng(0).permutation(len(embeddings))
    opened = {"dim": embeddings.shape[1]}
    started = time.perf_counter()
    with PeakMemory() as peak:
        for step, start in enumerate(range(0, len(order), batch)):
            positions = order[start:start + batch]
            if way == "preadv":
                embeddings[positions]
            else:
                gather_mapped(paths, positions, opened)
                if way == "mmap-per-batch" or step % 20 == 19:
                    opened = {"dim": opened["dim"]}
    per_batch = (time.perf_counter() - started) / -(-len(order) // batch)
    print(f"{way:>16}: {per_batch * 1000:6.2f} ms / batch, peak RSS +{peak.mib:.0f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--dim", type=int, default=6144)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)  # (directory, way): one measurement
    args = parser.parse_args()
    if args.run:
        return run(args.run[0], args.run[1], args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        for chunk in range(args.chunks):
            rows = np.random.default_rng(chunk).standard_normal((CHUNK, args.dim), dtype=np.float32)
            np.save(Path(tmp) / f"{chunk:05d}.x.npy", rows)
        size = args.chunks * CHUNK * args.dim * 4 / 2**20
        print(f"{args.chunks * CHUNK} rows x {args.dim} float32 ({size:.0f} MiB) in {args.chunks} chunk files, "
              f"batches of {args.batch} random rows, one epoch")
        for way in ("preadv", "mmap-per-batch", "mmap-kept-20"):
            subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--run", tmp, way], check=True)


if __name__ == "__main__":
    main()
