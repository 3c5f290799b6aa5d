"""fusion-embed's batch policy: files in listing order (before) vs shortest first (now), on the same files.

    python benchmarks/bench_embed_batching.py MODEL_DIR AUDIO_DIR [--files 600] [--rounds 2]
        [--policies listing:8 sorted:8 sorted:32]

A model runs each distinct frame count of a batch as its own sub-batch (padding never changes an embedding),
so with variable-length files (FSDD: 0.17-1.17 s in its first 600) a batch in listing order is nearly one forward per file;
sorted by header duration, a batch holds few frame counts. Each policy "ORDER:BATCH" runs `embed.embed_folder`
(reading, resampling, features, model) in one process, rounds interleaved; it reports wall and CPU seconds
(CPU time is steadier on a shared machine), model forwards (sub-batches) and that every policy gives the same
embeddings (max abs difference to the first).
"""

import argparse
import time

import numpy as np
import torch

from modeling_fusion import fusion
from modeling_fusion.cli import embed
from modeling_fusion.cli.file_list import list_audio


def run(model, extractor, paths, order, batch_size):
    forwards = []
    original = fusion.forward_by_length

    def counting(forward_fn, input_values, lengths, time_dim=1):
        forwards.append(len(set(lengths.tolist())))
        return original(forward_fn, input_values, lengths, time_dim)

    fusion.forward_by_length = counting
    listing = embed.durations
    if order == "listing":  # equal keys: the stable sort keeps the listing order, the policy before
        embed.durations = lambda files: [0.0] * len(files)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        results = embed.embed_folder(model, extractor, paths, batch_size, False, False, chunk_length_s=None)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        fusion.forward_by_length, embed.durations = original, listing
    return wall, cpu, sum(forwards), np.stack([r["embeddings"] for r in results])


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("audio")
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--policies", nargs="+", default=["listing:8", "sorted:8", "sorted:32"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, extractor = embed.load_model(args.model)
    paths = list_audio(args.audio)[0][: args.files]
    rows, reference = {policy: [] for policy in args.policies}, None
    for _ in range(args.rounds):
        for policy in args.policies:
            order, batch = policy.split(":")
            wall, cpu, forwards, embeddings = run(model, extractor, paths, order, int(batch))
            reference = embeddings if reference is None else reference
            rows[policy].append((wall, cpu, forwards, float(np.abs(embeddings - reference).max())))
    print(f"{len(paths)} files, {args.rounds} rounds, 1 thread; seconds are per round (min over rounds)\n")
    print("| policy (order:batch) | wall s | CPU s | model forwards | max abs diff to first |")
    print("|---|---|---|---|---|")
    for policy, runs in rows.items():
        print(f"| {policy} | {min(r[0] for r in runs):.1f} | {min(r[1] for r in runs):.1f} | {runs[0][2]} | "
              f"{max(r[3] for r in runs):.1e} |")


if __name__ == "__main__":
    main()
