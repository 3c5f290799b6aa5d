"""fusion-eval's input side alone, by stage, and EfficientAT end to end vs the bare loop, on this machine.

    python benchmarks/bench_input.py [--workdir W] [--clips 256] [--long-clips 48] [--workers 2] [--passes 4] [--repeats 3]
                                     [--e2e-clips 256] [--output FILE.md]

Sets: real SPCV2 test clips (1 s, 16 kHz 16-bit FLAC) read at 16 kHz and at 32 kHz; 10 s 16 kHz 16-bit WAV
noise read at 32 kHz. Per set, in one process: `load_audio` on the files (the bare decode rate), then the
batch fetch by stage (Arrow rows, decode + resample, crop into the batch), then the DataLoader with
`--workers` workers (clips/s), from the files and from a filled prepared-audio store. End to end: EfficientAT
(random weights) `fusion_eval.extract.extract` on SPCV2 clips vs the bare feature-extractor (torch, device
"cpu") + model loop on the same audio in memory, without and with the store. Runs with the code on
PYTHONPATH: point it at another checkout for "before" (stages, store and int16 need this version; they
read n/a there). CPU seconds (this process and its workers) are reported next to wall seconds: on a loaded
machine the CPU figure is the steadier one.
"""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_check import noise_folder, random_folder, spcv2_data_dir  # noqa: E402

from fusion_eval import clips as clips_module  # noqa: E402
from fusion_eval.datasource import load_table  # noqa: E402
from fusion_eval.tasks import resolve_task  # noqa: E402
from modeling_fusion.audio_input import load_audio  # noqa: E402

NEW = hasattr(clips_module.ClipDataset, "__getitems__")


def cost(function):
    """(wall s, CPU s of this process and its finished children), and the function's result."""
    def cpu():
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    wall, used = time.perf_counter(), cpu()
    result = function()
    return (time.perf_counter() - wall, cpu() - used), result


def best(function, repeats):
    return tuple(np.min([cost(function)[0] for _ in range(repeats)], axis=0))


def loader(table, rows, unit, workers, batch_size, store=None):
    if NEW:
        dataset = clips_module.ClipDataset(table, rows, "start", unit, 42, store=store)
        collate = clips_module.keep_batch
    else:
        dataset = clips_module.ClipDataset(table, rows, "start", unit, 42)
        collate = clips_module.ClipCollator()
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)


def input_side(name, table, unit, workers, repeats, workdir, passes, batch_size=64):
    """Markdown rows: ms per clip (wall / CPU) by stage and clips/s of the loaders over `passes` passes of the
    files (so that workers get many batches: their start-up is not what is measured), for one set."""
    rows = np.tile(np.arange(len(table)), passes)
    paths = [table.audio[int(row)]["audio"]["path"] for row in rows]
    n = len(rows)
    bare = best(lambda: [load_audio(path, table.sampling_rate) for path in paths], repeats)
    lines = [f"| {name} | load_audio on the files (bare) | {bare[0] / n * 1e3:.3f} / {bare[1] / n * 1e3:.3f} | "
             f"{n / bare[0]:.0f} | 1.00 |"]

    def add(stage, seconds, reference=bare):
        lines.append(f"| {name} | {stage} | {seconds[0] / n * 1e3:.3f} / {seconds[1] / n * 1e3:.3f} | "
                     f"{n / seconds[0]:.0f} | {reference[1] / seconds[1]:.2f} |")

    batches = [rows[i:i + batch_size] for i in range(0, n, batch_size)]
    if NEW:
        dataset = clips_module.ClipDataset(table, rows, "start", unit, 42)
        add("stage: Arrow rows (one read per batch)", best(lambda: [table.sources(b) for b in batches], repeats))
        sources = [s for b in batches for s in table.sources(b)]
        add("stage: read_clip (decode, resample or int16)",
            best(lambda: [clips_module.read_clip(s, table.sampling_rate, "x") for s in sources], repeats))
        found = [clips_module.read_clip(s, table.sampling_rate, "x") for s in sources]
        add("stage: crop into the batch buffer",
            best(lambda: [dataset.batch(b, found[i:i + len(b)]) for i, b in zip(range(0, n, batch_size), batches)],
                 repeats))
        add("batch fetch, one process (all stages)", best(lambda: [dataset.__getitems__(b) for b in batches], repeats))
    else:
        dataset = clips_module.ClipDataset(table, rows, "start", unit, 42)
        collate = clips_module.ClipCollator()
        add("item fetch + collate, one process", best(
            lambda: [collate([dataset[i] for i in b]) for b in batches], repeats))
    for count in sorted({0, workers}):
        taken = best(lambda: sum(len(batch["rows"]) for batch in loader(table, rows, unit, count, batch_size)),
                     repeats)
        add(f"DataLoader, {count} workers" + (f" (= {bare[0] / taken[0] / count:.2f} x {count} x bare, wall)"
                                                 if count else ""), taken)
    if NEW:
        from accelerate import Accelerator

        from fusion_eval.store import prepared_store

        store = prepared_store(Accelerator(cpu=True), table, rows, workdir / "audio", 0, name)
        for count in sorted({0, workers}):
            add(f"DataLoader from the store, {count} workers",
                best(lambda: sum(len(b["rows"]) for b in loader(table, rows, unit, count, batch_size, store)),
                     repeats))
    return lines


def end_to_end(table, clips, batch_size, repeats, workdir):
    """Markdown rows: EfficientAT harness vs bare loop (clips/s wall, CPU), without and with the store."""
    from accelerate import Accelerator

    from fusion_eval.cache import ViewCache
    from fusion_eval.extract import extract
    from fusion_eval.representations import Embedder

    embedder = Embedder(random_folder("efficientat", workdir / "efficientat-model"), sweep=True)
    rows = np.arange(min(clips, len(table)))
    waves = [clips_module.fix_length(table.wave(int(row)), 32000) for row in rows]
    extractor, model = embedder.feature_extractor, embedder.model

    @torch.no_grad()
    def bare():
        for start in range(0, len(rows), batch_size):
            features = extractor(waves[start:start + batch_size], sampling_rate=32000, return_tensors="pt", device="cpu")
            model(**features, output_hidden_states=True, output_plain_embedding=True)

    runs = {"bare": [], "harness": [], "harness, store": []}
    store = {"audio_store": workdir / "e2e-audio"} if NEW else None
    bare()
    for repeat in range(repeats):
        runs["bare"].append(cost(bare)[0])
        cache = ViewCache(workdir / f"e2e-{repeat}", rows, 512, {})
        runs["harness"].append(cost(lambda: extract(Accelerator(cpu=True), embedder, table, cache, "start", 32000, 42,
                                                    batch_size=batch_size, num_workers=0))[0])
        if store:
            if repeat == 0:  # fill it
                extract(Accelerator(cpu=True), embedder, table, ViewCache(workdir / "e2e-fill", rows, 512, {}), "start",
                        32000, 42, batch_size=batch_size, num_workers=0, **store)
            cache = ViewCache(workdir / f"e2e-store-{repeat}", rows, 512, {})
            runs["harness, store"].append(cost(lambda: extract(Accelerator(cpu=True), embedder, table, cache, "start",
                                                               32000, 42, batch_size=batch_size, num_workers=0,
                                                               **store))[0])
    reference = np.min(runs["bare"], axis=0)
    lines = []
    for name, values in runs.items():
        if values:
            took = np.min(values, axis=0)
            lines.append(f"| EfficientAT, {len(rows)} SPCV2 clips 16 -> 32 kHz | {name} | {len(rows) / took[0]:.1f} "
                         f"({len(rows) / took[1]:.1f}) | {reference[0] / took[0]:.2f} ({reference[1] / took[1]:.2f}) |")
            print(lines[-1], flush=True)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir")
    parser.add_argument("--clips", type=int, default=256, help="SPCV2 clips for the input side")
    parser.add_argument("--long-clips", type=int, default=48, help="10 s noise clips for the input side")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--passes", type=int, default=4, help="input side: each file read this many times per run")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--e2e-clips", type=int, default=256, help="SPCV2 clips end to end (0: skip)")
    parser.add_argument("--output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        spcv2 = resolve_task("spcv2-test-folds")
        lines = [f"code: {'this version' if NEW else 'before (no batch fetch)'}; torch {torch.__version__}, "
                 f"{torch.get_num_threads()} threads; best of {args.repeats}", "",
                 "| set | stage / loader | ms per clip, wall / CPU | clips/s (wall) | bare / this, CPU |",
                 "|---|---|---|---|---|"]
        for name, table, unit in (
                ("SPCV2 1 s FLAC -> 16 kHz", load_table(spcv2, spcv2_data_dir(), 16000), 16000),
                ("SPCV2 1 s FLAC -> 32 kHz", load_table(spcv2, spcv2_data_dir(), 32000), 32000),
                ("noise 10 s WAV 16 -> 32 kHz",
                 load_table(resolve_task(noise_folder(work / "noise", args.long_clips, 10.0), unit_sec=10.0), work, 32000),
                 320000)):
            if len(table) > args.clips and "SPCV2" in name:
                table.audio, table.names = table.audio.select(range(args.clips)), table.names[:args.clips]
            for line in input_side(name, table, unit, args.workers, args.repeats, work / name.split()[0], args.passes):
                lines.append(line)
                print(line, flush=True)
        if args.e2e_clips:
            table = load_table(spcv2, spcv2_data_dir(), 32000)
            lines += ["", "| set | run | clips/s wall (CPU) | / bare, wall (CPU) |", "|---|---|---|---|"]
            lines += end_to_end(table, args.e2e_clips, 32, args.repeats, work)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
