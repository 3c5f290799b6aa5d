"""Evaluation-harness cost: extraction and probe time per 1,000 clips, and peak memory.

    python benchmarks/bench_eval.py [--model DIR] [--clips 64] [--unit-sec 1.0] [--probe-dim 6144]

Extraction runs the harness (decode + resample through `datasets`, crop, Accelerate, cache writes)
on synthetic 16 kHz clips and, as the reference in the same process, the bare feature extractor +
model loop on the same audio already in memory; the ratio is the harness overhead. The probe runs
the EVAR protocol on random embeddings against a bare Adam loop of the same epochs and batch size.
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

from fusion_eval.cache import ViewCache
from fusion_eval.datasource import load_table
from fusion_eval.extract import extract
from fusion_eval.probe import ProbeRandomness, linear_probe, load_accuracy_metric
from fusion_eval.representations import Embedder
from fusion_eval.tasks import resolve_task


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_cnn14(folder):
    from modeling_fusion.configuration_cnn14 import Cnn14FusionConfig
    from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
    from modeling_fusion.modeling_cnn14 import Cnn14ForAudioClassification
    from modeling_fusion.save_folder import save_model_folder

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


def bench_probe(n_train, dim, classes, epochs):
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((classes, dim))
    labels = rng.integers(0, classes, n_train + 500)
    x = (centres[labels] + rng.standard_normal((len(labels), dim)) * 8).astype(np.float32)
    metric = load_accuracy_metric()
    started = time.perf_counter()
    result = linear_probe(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], classes, ProbeRandomness(42),
                          max_epochs=epochs, patience=epochs, metric=metric)
    probe = time.perf_counter() - started

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()
    inputs, targets = torch.from_numpy(x[:n_train]), torch.from_numpy(labels[:n_train])
    layer = torch.nn.Linear(dim, classes)
    optimizer = torch.optim.Adam(layer.parameters(), lr=3e-4)
    batch = min(200, n_train)
    for _ in range(result.epochs):
        order = torch.randperm(n_train)
        for start in range(0, n_train, batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(layer(inputs[rows]), targets[rows]).backward()
            optimizer.step()
    bare = time.perf_counter() - started
    torch.set_num_threads(threads)
    return probe, bare, result.epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder (default: a random full-size CNN14)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--unit-sec", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probe-clips", type=int, default=2000)
    parser.add_argument("--probe-dim", type=int, default=6144)
    parser.add_argument("--probe-epochs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = args.model or random_cnn14(workdir / "model")
        harness, bare = bench_extraction(model, args.clips, args.unit_sec, args.batch_size, workdir)
        extraction_peak = peak_mib()
        probe, probe_bare, epochs = bench_probe(args.probe_clips, args.probe_dim, 10, args.probe_epochs)
    per_k = 1000 / args.clips
    print(f"extraction ({args.clips} clips of {args.unit_sec} s, all layers): harness {harness * per_k:.1f} s / 1000 clips, "
          f"bare model loop {bare * per_k:.1f} s / 1000 clips, ratio {harness / bare:.2f}")
    print(f"probe ({args.probe_clips} x {args.probe_dim}, 10 classes, {epochs} epochs): "
          f"{probe * 1000 / args.probe_clips:.2f} s / 1000 training clips, bare Adam loop "
          f"{probe_bare * 1000 / args.probe_clips:.2f} s, ratio {probe / probe_bare:.2f}")
    print(f"peak RSS: {extraction_peak:.0f} MiB after extraction, {peak_mib():.0f} MiB after the probe")


if __name__ == "__main__":
    main()
