"""fusion-eval extraction end to end vs the bare feature-extractor + model loop, per backbone; front ends numpy vs torch.

    python benchmarks/bench_extract.py [--backbones cnn14 efficientat ast vggish] [--clips 48] [--unit-sec 1.0]
                                       [--num-workers auto] [--frontend-clips 32] [--frontend-sec 10] [--output FILE.md]

Extraction: random-weight full-size models saved as folders; synthetic noise clips written as WAV files at
the model's rate. "harness" = `fusion_eval.extract.extract` (datasets decoding, crop, DataLoader workers,
Accelerate, features and model, cache writes; all layers, as `--sweep`); "bare" = the feature extractor (its
default numpy call, and the torch front end with device="cpu") + model forward on the same audio already in
memory, same batch size, same process, after one warm-up batch; best of `--repeats` alternating runs. A ratio
is harness / bare clips/s (1.0 = no overhead). Front end: one batch of `--frontend-clips` clips of
`--frontend-sec` s through the numpy path (default call) and through `device="cpu"` (torch float32), best of 3.
"""

import argparse
import inspect
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
from fusion_eval.extract import default_num_workers, extract
from fusion_eval.representations import Embedder
from fusion_eval.tasks import resolve_task
from modeling_fusion import BACKBONES
from gpu_check import random_folder  # benchmarks/ is on sys.path when run as a script


def write_clips(folder, count, rate, unit_sec):
    rng = np.random.default_rng(0)
    (folder / "audio").mkdir(parents=True)
    waves = [(rng.standard_normal(int(rate * unit_sec)) * 0.1).astype(np.float32) for _ in range(count)]
    lines = ["file_name,label,split"]
    for index, wave in enumerate(waves):
        sf.write(folder / f"audio/{index}.wav", wave, rate, subtype="FLOAT")
        lines.append(f"audio/{index}.wav,{index % 2},train")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    return waves


def bench_extraction(backbone, clips, unit_sec, batch_size, num_workers, repeats, workdir):
    """(wall s, CPU s) for `clips` clips: {"harness", "numpy" (bare loop, numpy front end), "torch" (bare loop,
    front end on device="cpu"; None before the torch front ends)}, best of `repeats` alternating runs after a
    warm-up."""
    model = random_folder(backbone, workdir / f"{backbone}-model")
    embedder = Embedder(str(model), sweep=True)
    rate = embedder.sampling_rate
    folder = workdir / f"{backbone}-clips"
    waves = write_clips(folder, clips, rate, unit_sec)
    table = load_table(resolve_task(str(folder), unit_sec=unit_sec), workdir, rate)
    extractor, model = embedder.feature_extractor, embedder.model

    def harness(repeat):
        cache = ViewCache(workdir / f"{backbone}-cache-{repeat}", np.arange(clips), 512, {})
        extract(Accelerator(cpu=True), embedder, table, cache, "start", int(rate * unit_sec), 42,
                batch_size=batch_size, num_workers=num_workers, desc=f"{backbone} harness")

    takes_device = "device" in inspect.signature(extractor.__call__).parameters

    @torch.no_grad()
    def bare(on_device, count=clips):
        options = {"device": "cpu"} if on_device else {}
        for start in range(0, count, batch_size):
            features = extractor(waves[start:start + batch_size], sampling_rate=rate, return_tensors="pt", **options)
            model(**features, output_hidden_states=True, output_plain_embedding=True)

    bare(False, batch_size)  # warm-up: first-call kernel selection and allocations
    times = {"harness": [], "numpy": [], "torch": []}
    for repeat in range(repeats):
        times["harness"].append(cost(lambda: harness(repeat)))
        times["numpy"].append(cost(lambda: bare(False)))
        if takes_device:
            times["torch"].append(cost(lambda: bare(True)))
    return {name: tuple(np.min(values, axis=0)) if values else None for name, values in times.items()}


def cost(function):
    """(wall seconds, CPU seconds of this process and its finished children, e.g. DataLoader workers)."""
    def cpu():
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    wall, used = time.perf_counter(), cpu()
    function()
    return time.perf_counter() - wall, cpu() - used


def bench_frontend(backbone, clips, seconds):
    """((wall s, CPU s) numpy, (wall s, CPU s) torch cpu or None, max |difference|) for one batch, best of 3."""
    extractor = BACKBONES[backbone][3]()
    rate = extractor.sampling_rate
    rng = np.random.default_rng(1)
    waves = [(rng.standard_normal(int(rate * seconds)) * 0.1).astype(np.float32) for _ in range(clips)]
    numpy_cost = np.min([cost(lambda: extractor(waves, sampling_rate=rate)) for _ in range(3)], axis=0)
    if "device" not in inspect.signature(extractor.__call__).parameters:
        return numpy_cost, None, None
    torch_cost = np.min([cost(lambda: extractor(waves, sampling_rate=rate, device="cpu")) for _ in range(3)], axis=0)
    reference = extractor(waves, sampling_rate=rate)["input_values"]
    ours = extractor(waves, sampling_rate=rate, device="cpu", return_tensors="np")["input_values"]
    return numpy_cost, torch_cost, float(np.abs(reference - ours).max())


def rate_cell(clips, seconds, per=None):
    """'wall (cpu)' of clips / seconds, or of the ratio seconds / per."""
    if per is not None:
        return f"{seconds[0] / per[0]:.2f} ({seconds[1] / per[1]:.2f})"
    return f"{clips / seconds[0]:.1f} ({clips / seconds[1]:.1f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["cnn14", "efficientat", "ast", "vggish"], choices=BACKBONES)
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--unit-sec", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="alternating harness/bare runs; the best of each counts")
    parser.add_argument("--num-workers", default="auto", help="DataLoader workers for the harness ('auto' = its default)")
    parser.add_argument("--frontend-clips", type=int, default=32)
    parser.add_argument("--frontend-sec", type=float, default=10.0)
    parser.add_argument("--output", help="also write the tables to this markdown file")
    args = parser.parse_args()
    workers = default_num_workers() if args.num_workers == "auto" else int(args.num_workers)
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU",
             "", f"Extraction, {args.clips} clips of {args.unit_sec} s, batch {args.batch_size}, "
             f"num_workers {workers} ({args.num_workers}), all layers, best of {args.repeats}:", "",
             "Wall-clock clips/s, and in brackets clips per CPU-second (this process + DataLoader workers; robust to "
             "other load on the machine). Ratios are harness / bare.", "",
             "| backbone | harness | bare, numpy front end | ratio | bare, torch front end | ratio |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.backbones:
            took = bench_extraction(backbone, args.clips, args.unit_sec, args.batch_size, workers, args.repeats,
                                    Path(tmp))
            cells = [rate_cell(args.clips, took["harness"])]
            for bare in ("numpy", "torch"):
                cells += ["n/a", "n/a"] if took[bare] is None else [rate_cell(args.clips, took[bare]),
                                                                    rate_cell(1, took[bare], took["harness"])]
            lines.append(f"| {backbone} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    lines += ["", f"Front end, one batch of {args.frontend_clips} clips of {args.frontend_sec} s, best of 3, wall ms "
              "(CPU ms):", "", "| backbone | numpy | torch cpu fp32 | wall speed-up | max abs diff |", "|---|---|---|---|---|"]
    for backbone in args.backbones:
        numpy_cost, torch_cost, diff = bench_frontend(backbone, args.frontend_clips, args.frontend_sec)
        cells = [f"{numpy_cost[0] * 1e3:.0f} ({numpy_cost[1] * 1e3:.0f})"]
        cells += ["n/a"] * 3 if torch_cost is None else [
            f"{torch_cost[0] * 1e3:.0f} ({torch_cost[1] * 1e3:.0f})", f"{numpy_cost[0] / torch_cost[0]:.2f}", f"{diff:.2g}"]
        lines.append(f"| {backbone} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        temporary.replace(path)


if __name__ == "__main__":
    main()
