"""The YAMNet study: single-layer probes from the sweep's cache, and the fusion chosen on validation data only.

    # probe every cached representation (layers, plain, configured fusion) of a task whose
    # `fusion-eval --sweep` extraction finished, under that run's model key, with fewer seeds:
    python scripts/yamnet_study.py probe --model models/yamnet --data-dir ../shared/data \
        --task spcv2-test-folds --cache-key KEY --seeds 42 --output outputs/yamnet_probe_spc/results.json
    # choose the fusion:
    python scripts/yamnet_study.py choose --model models/yamnet --data-dir ../shared/data \
        --sweep outputs/yamnet_probe_spc/results.json outputs/yamnet_sweep_fsdd/results.json \
        outputs/yamnet_sweep_us8k/results.json --output outputs/yamnet_study

`choose` reads the sweep results (every single layer, the plain embedding), ranks the layers by mean
*validation* accuracy over the tasks, and probes candidate fusions: each of the top layers paired
with each layer at the final frame rate (layers 13 and 14, stride 32 = 320 ms). For such pairs the
fusion recipe pools both layers to stride 32 and mean+max pooling is per dimension, so the fused clip
embedding is exactly the concatenation of the two cached single-layer embeddings: candidates cost
probes, not extraction. Embeddings are found by each run's recorded model key (the sweeps may have
run different revisions of the code, which changes the key). The candidate with the best mean
validation accuracy is chosen; test accuracy is never looked at for the choice. Writes candidates.json.
To use more cores, run `choose --probe-tasks T ... [--pair-with 13]` once per task group (and
partner layer) and combine with
`merge part1/candidates.json part2/candidates.json ... --output DIR`.
"""

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from accelerate import Accelerator

from fusion_eval import runner
from fusion_eval.cache import ViewCache
from fusion_eval.probe import load_accuracy_metric
from fusion_eval.representations import Embedder, Representation
from fusion_eval.runner import PreparedTask, RunSettings, plan_task, probe_task
from fusion_eval.tasks import resolve_task

from efficientat_study import ConcatViews, validation_accuracy, write_choice  # the same candidate machinery (scripts/ is on sys.path)


def cached_task(task, table, runs, cache_dir, model_key, chunk_size):
    """The sweep's two cached views of a task (test clips from their start, train clips at random offsets),
    found under the sweep's model key: the same rows `runner.prepare_task` chose."""
    folders = sorted(Path(cache_dir, model_key[:20]).glob(f"{Path(table.source).name}-*"))
    if len(folders) != 1:
        raise RuntimeError(f"{task.name}: expected one cache folder for model key {model_key[:20]}, found {folders}")
    test_rows = np.unique(np.concatenate([run.test for run in runs]))
    train_rows = np.unique(np.concatenate([np.concatenate([run.train] + ([run.valid] if run.valid is not None else []))
                                           for run in runs]))
    start = ViewCache(_one(folders[0], "start-*"), test_rows, chunk_size, {})
    lengths, ok = start.info()
    unit = int(round(task.unit_sec * 16000))  # every YAMNet task runs at 16 kHz
    random_rows = np.setdiff1d(train_rows, start.rows[~ok | (lengths <= unit)])
    shuffled = ViewCache(_one(folders[0], "random42-*"), random_rows, chunk_size, {})
    for cache in (start, shuffled):
        if len(cache.rows) and cache.missing(["layer_1"]):
            raise RuntimeError(f"{task.name}: the sweep's cache {cache.directory} is incomplete")
    return PreparedTask(task, table, runs, start, shuffled, 0, 0.0)


def _one(folder, pattern):
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one {pattern} in {folder}, found {found}")
    return found[0]


def probe_cached(embedder, names, keys, chunk_sizes, settings):
    """{task: probe_task result} for `embedder.representations`, every embedding read from the cache."""
    metric = load_accuracy_metric()
    Accelerator()  # the probes' device and seeding follow fusion-eval's
    results = {}
    for name in names:
        task = resolve_task(name)
        table, runs = plan_task(task, embedder, settings)
        prepared = cached_task(task, table, runs, settings.cache_dir, keys[name], chunk_sizes[name])
        results[name] = probe_task(prepared, embedder, settings, metric)
    return results


def probe(args):
    embedder = Embedder(args.model, sweep=True)
    settings = RunSettings(data_dir=args.data_dir, cache_dir=args.cache_dir, seeds=tuple(args.seeds))
    tasks = probe_cached(embedder, args.task, dict.fromkeys(args.task, args.cache_key),
                         dict.fromkeys(args.task, args.chunk_size), settings)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({
        "tasks": tasks,
        "model": {"id": args.model, "name": embedder.name, "family": embedder.family, "cache_key": args.cache_key,
                  "representations": [rep.__dict__ for rep in embedder.representations]},
        "settings": {"seeds": list(args.seeds), "chunk_size": args.chunk_size, "std": "population (ddof=0) over seeds",
                     "note": "probes of a fusion-eval --sweep extraction, read from its cache"}}, indent=1))
    print(f"wrote {output}")


def choose(args):
    tasks, keys, chunk_sizes = {}, {}, {}
    for path in args.sweep:
        results = json.loads(Path(path).read_text())
        tasks.update(results["tasks"])
        keys.update({name: results["model"]["cache_key"] for name in results["tasks"]})
        chunk_sizes.update({name: results["settings"]["chunk_size"] for name in results["tasks"]})
    layer_keys = [k for k, r in next(iter(tasks.values()))["representations"].items() if r["kind"] == "layer"]
    valid = {key: np.mean([validation_accuracy(t["representations"][key]) for t in tasks.values()]) for key in layer_keys}
    ranked = sorted(layer_keys, key=lambda key: -valid[key])
    embedder = Embedder(args.model, sweep=True)
    strides = embedder.model.config.time_strides  # layers 1..L
    late = [f"layer_{l}" for l in range(1, len(strides) + 1) if strides[l - 1] == max(strides)
            and (not args.pair_with or l in args.pair_with)]
    pairs = sorted({tuple(sorted((a, b), key=lambda k: int(k.split("_")[1])))
                    for a, b in itertools.product(ranked[: args.top], late) if a != b})
    print("layers by validation accuracy:", [(k, round(valid[k], 4)) for k in ranked])
    print("candidate fusions:", pairs)
    embedder.representations = [Representation("+".join(p), "fusion", "+".join(p),
                                                tuple(int(k.split("_")[1]) for k in p)) for p in pairs]
    runner._Views = ConcatViews
    seeds = {name: tuple(int(seed) for seed in task["seeds"]) for name, task in tasks.items()}
    results = {}
    for name in args.probe_tasks or tasks:  # each task with the seeds its sweep used
        settings = RunSettings(data_dir=args.data_dir, cache_dir=args.cache_dir, seeds=seeds[name])
        results.update(probe_cached(embedder, [name], keys, chunk_sizes, settings))
    candidates = [{"layers": list(rep.layers), "tasks": {
        name: {"valid": validation_accuracy(r["representations"][rep.key]), "test_mean": r["representations"][rep.key]["mean"],
               "test_std": r["representations"][rep.key]["std"]} for name, r in results.items()}}
        for rep in embedder.representations]
    write_choice({k: float(valid[k]) for k in ranked}, candidates, Path(args.output))


def merge(args):
    """candidates.json files of `choose --probe-tasks` runs (same candidates, different tasks) -> one choice."""
    parts = [json.loads(Path(path).read_text()) for path in args.parts]
    merged = {}
    for part in parts:
        if part["layer_validation"] != parts[0]["layer_validation"]:
            raise ValueError("the parts ranked the layers on different sweeps")
        for candidate in part["candidates"]:
            merged.setdefault(tuple(candidate["layers"]), {}).update(candidate["tasks"])
    write_choice(parts[0]["layer_validation"], [{"layers": list(k), "tasks": v} for k, v in merged.items()],
                 Path(args.output))


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("probe", "choose"):
        sub = commands.add_parser(name)
        sub.add_argument("--model", required=True)
        sub.add_argument("--data-dir", required=True)
        sub.add_argument("--output", required=True)
        sub.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "fusion_eval"))
    merge_parser = commands.add_parser("merge")
    merge_parser.add_argument("parts", nargs="+", help="candidates.json of choose --probe-tasks runs")
    merge_parser.add_argument("--output", required=True)
    probe_parser, choose_parser = commands.choices["probe"], commands.choices["choose"]
    probe_parser.add_argument("--task", nargs="+", required=True)
    probe_parser.add_argument("--cache-key", required=True, help="the sweep's model key (its first 20+ characters)")
    probe_parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    probe_parser.add_argument("--chunk-size", type=int, default=512, help="the sweep's --chunk-size")
    choose_parser.add_argument("--sweep", nargs="+", required=True, help="results.json files of the sweeps")
    choose_parser.add_argument("--top", type=int, default=4, help="best single layers (by validation) to pair")
    choose_parser.add_argument("--probe-tasks", nargs="+",
                               help="probe the candidates on these tasks only (ranking still uses every sweep); "
                                    "combine the parts with `merge`")
    choose_parser.add_argument("--pair-with", type=int, nargs="+",
                               help="only these final-rate layers as partners (to split candidates over processes)")
    args = parser.parse_args()
    {"probe": probe, "choose": choose, "merge": merge}[args.command](args)


if __name__ == "__main__":
    main()
