"""Evaluation-harness cost: extraction and probe time per 1,000 clips, and peak memory.

    python benchmarks/bench_eval.py [--model DIR] [--clips 64] [--unit-sec 1.0]
        [--probe-clips 2000] [--probe-dim 6144] [--probe-epochs 50]

Extraction runs the harness (decode + resample through `datasets`, crop, Accelerate, cache writes)
on synthetic 16 kHz clips and, as the reference in the same process, the bare feature extractor +
model loop on the same audio already in memory; the ratio is the harness overhead.

The probe runs the EVAR protocol (10 classes, `--probe-epochs` epochs with patience as long, so all
of them run) on random embeddings that are written chunk by chunk to an embedding cache on disk in
fusion-eval's format (512 rows a chunk) and read back by the probe as fusion-eval reads them, against
a bare in-memory Adam loop of the same epochs and batch size on at most `--bare-clips` of them.
`--probe-clips 300000 --probe-dim 6144` is NSynth-size CNN14-Fusion: 7.4 GB of cache under $TMPDIR.
Without --model the model is a random-weight full-size CNN14-Fusion#3#6.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from accelerate import Accelerator
from memory import PeakMemory
from tqdm.auto import tqdm

from fusion_eval.cache import RowSelection, ViewCache
from fusion_eval.datasource import load_table
from fusion_eval.extract import extract
from fusion_eval.probes.linear import ProbeRandomness, linear_probe, load_accuracy_metric
from fusion_eval.representations import Embedder
from fusion_eval.tasks import resolve_task


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_cnn14(folder):
    from modeling_fusion.configuration_cnn14 import Cnn14FusionConfig
    from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
    from modeling_fusion.modeling_cnn14 import Cnn14ForAudioClassification
    from modeling_fusion.convert.save_folder import save_model_folder

    torch.manual_seed(0)
    return save_model_folder(Cnn14ForAudioClassification(Cnn14FusionConfig()).eval(), Cnn14FeatureExtractor(), folder)


def bench_extraction(model, clips, unit_sec, batch_size, workdir):
    rng = np.random.default_rng(0)
    folder = workdir / "clips"
    (folder / "audio").mkdir(parents=True)
    waves = [(rng.standard_normal(int(16000 * unit_sec)) * 0.1).astype(np.float32) for _ in range(clips)]
    lines = ["file_name,label,split"]
    for index, wave in enumerate(waves):
        sf.write(folder / f"audio/{index}.wav", wave, 16000, subtype="FLOAT")
        lines.append(f"audio/{index}.wav,{index % 2},train")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")

    embedder = Embedder(str(model), sweep=True)
    table = load_table(resolve_task(str(folder), unit_sec=unit_sec), workdir, embedder.sampling_rate)
    cache = ViewCache(workdir / "cache", np.arange(clips), 512, {})
    unit = int(16000 * unit_sec)
    started = time.perf_counter()
    extract(Accelerator(cpu=True), embedder, table, cache, "start", unit, 42, batch_size=batch_size, desc="harness")
    harness = time.perf_counter() - started

    fe = embedder.feature_extractor
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, clips, batch_size):
            features = fe(waves[start:start + batch_size], sampling_rate=16000, return_tensors="pt")
            embedder.model(**features, output_hidden_states=True, output_plain_embedding=True)
    bare = time.perf_counter() - started
    return harness, bare


def write_probe_cache(directory, clips, dim, classes, chunk_size=512):
    """Random Gaussian-cluster embeddings [clips, dim] (noise 8x the centres' spread) written as a
    ViewCache one chunk at a time, so they never sit in memory whole. Returns (cache, labels [clips])."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    labels = rng.integers(0, classes, clips)
    cache = ViewCache(directory, np.arange(clips), chunk_size, {"benchmark": "probe"})
    cache.create()
    for chunk in tqdm(range(cache.num_chunks), desc="writing embeddings", unit="chunk"):
        rows = cache.chunk_rows(chunk)
        noise = np.random.default_rng([1, chunk]).standard_normal((len(rows), dim), dtype=np.float32)
        cache.write(chunk, rows, np.ones(len(rows), np.int64), np.ones(len(rows), bool),
                    {"fusion": centres[labels[rows]] + noise * 8})
    return cache, labels


def bench_probe(n_train, dim, classes, epochs, bare_clips, workdir):
    cache, labels = write_probe_cache(workdir / "probe-cache", n_train + 500, dim, classes)
    embeddings = cache.embeddings("fusion")
    select = lambda rows: RowSelection([embeddings], np.zeros(len(rows), np.int64), rows)  # noqa: E731
    metric = load_accuracy_metric()
    started = time.perf_counter()
    with PeakMemory() as probe_memory:
        result = linear_probe(select(np.arange(n_train)), labels[:n_train], select(np.arange(n_train, len(labels))),
                              labels[n_train:], classes, ProbeRandomness(42), max_epochs=epochs, patience=epochs,
                              metric=metric)
    probe = time.perf_counter() - started

    bare_n = min(n_train, bare_clips)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    inputs, targets = torch.from_numpy(embeddings[np.arange(bare_n)]), torch.from_numpy(labels[:bare_n])
    started = time.perf_counter()
    layer = torch.nn.Linear(dim, classes)
    optimizer = torch.optim.Adam(layer.parameters(), lr=3e-4)
    batch = min(200, bare_n)
    for _ in range(result.epochs):
        order = torch.randperm(bare_n)
        for start in range(0, bare_n, batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(layer(inputs[rows]), targets[rows]).backward()
            optimizer.step()
    bare = time.perf_counter() - started
    torch.set_num_threads(threads)
    return probe, bare * n_train / bare_n, result, probe_memory.mib


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", help="model folder (default: a random full-size CNN14)")
    parser.add_argument("--clips", type=int, default=64, help="synthetic 16 kHz clips for the extraction timing")
    parser.add_argument("--unit-sec", type=float, default=1.0, help="clip length in seconds")
    parser.add_argument("--batch-size", type=int, default=32, help="extraction batch")
    parser.add_argument("--probe-clips", type=int, default=2000,
                        help="random embeddings the probe trains on (300000 = NSynth size), written to a disk cache")
    parser.add_argument("--probe-dim", type=int, default=6144, help="embedding width (6144 = CNN14-Fusion#3#6)")
    parser.add_argument("--probe-epochs", type=int, default=50, help="probe epochs (all run: patience as long)")
    parser.add_argument("--bare-clips", type=int, default=20000,
                        help="clips of the in-memory bare Adam loop (its time is scaled to --probe-clips)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = args.model or random_cnn14(workdir / "model")
        harness, bare = bench_extraction(model, args.clips, args.unit_sec, args.batch_size, workdir)
        extraction_peak = peak_mib()
        probe, probe_bare, result, probe_mib = bench_probe(args.probe_clips, args.probe_dim, 10, args.probe_epochs,
                                                           args.bare_clips, workdir)
    per_k = 1000 / args.clips
    print(f"extraction ({args.clips} clips of {args.unit_sec} s, all layers): harness {harness * per_k:.1f} s / 1000 clips, "
          f"bare model loop {bare * per_k:.1f} s / 1000 clips, ratio {harness / bare:.2f}")
    print(f"probe ({args.probe_clips} x {args.probe_dim} from the on-disk cache, 10 classes, {result.epochs} epochs, "
          f"test accuracy {result.accuracy:.3f}): {probe:.0f} s, {probe * 1000 / args.probe_clips:.2f} s / 1000 "
          f"training clips; bare in-memory Adam loop ({min(args.bare_clips, args.probe_clips)} clips) "
          f"{probe_bare * 1000 / args.probe_clips:.2f} s / 1000, ratio {probe / probe_bare:.2f}")
    print(f"peak RSS: {extraction_peak:.0f} MiB after extraction, {peak_mib():.0f} MiB at the end; "
          f"the probe's own peak {probe_mib:.0f} MiB above its start")


if __name__ == "__main__":
    main()
