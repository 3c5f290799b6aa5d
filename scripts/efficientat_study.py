"""The EfficientAT mn04 study: which fusion of layers, chosen on validation data only.

    python scripts/efficientat_study.py --model models/efficientat-mn04 --data-dir ../shared/data \
        --sweep outputs/effat_sweep_spc/results.json outputs/effat_sweep_rest/results.json --output outputs/effat_study

Reads the `fusion-eval --sweep` results (every single layer, the plain embedding), ranks the layers by
mean *validation* accuracy over the tasks, and probes candidate fusions: each of the top layers paired
with each layer at the final frame rate (stride 32). For such pairs the fusion recipe pools both layers
to stride 32, and mean+max pooling is per dimension, so the fused clip embedding is exactly the
concatenation of the two cached single-layer embeddings: candidates cost probes, not extraction.
The candidate with the best mean validation accuracy is chosen; test accuracy is never looked at for
the choice. Writes candidates.json (every candidate's validation and test accuracy).
"""

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from fusion_eval import runner
from fusion_eval.probe import load_accuracy_metric
from fusion_eval.representations import Embedder, Representation
from fusion_eval.runner import RunSettings, plan_task, prepare_task, probe_task
from fusion_eval.tasks import resolve_task


def validation_accuracy(rep):
    """Mean over seeds and runs of the probe's best validation accuracy."""
    return float(np.mean([run["valid_accuracy"] for seed in rep["seeds"].values() for run in seed["runs"]]))


class ConcatViews(runner._Views):
    """Cached views where a key "layer_a+layer_b" is the concatenation of the two layers' embeddings."""

    def load(self, key):
        parts = key.split("+")
        arrays = [[cache.load(part) if len(cache.rows) else None for cache in self.caches] for part in parts]
        self.arrays = [None if view[0] is None else np.concatenate(view, axis=1) for view in zip(*arrays)]
        return self


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--sweep", nargs="+", required=True, help="results.json files of fusion-eval --sweep runs")
    parser.add_argument("--output", required=True)
    parser.add_argument("--top", type=int, default=4, help="best single layers (by validation) to pair")
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "fusion_eval"))
    args = parser.parse_args()

    tasks = {}
    for path in args.sweep:
        tasks.update(json.loads(Path(path).read_text())["tasks"])
    layer_keys = [k for k, r in next(iter(tasks.values()))["representations"].items() if r["kind"] == "layer"]
    valid = {key: np.mean([validation_accuracy(t["representations"][key]) for t in tasks.values()]) for key in layer_keys}
    ranked = sorted(layer_keys, key=lambda key: -valid[key])
    embedder = Embedder(args.model, sweep=True)
    sweep_representations = embedder.representations
    strides = embedder.model.config.time_strides  # layers 1..L
    late = [f"layer_{l}" for l in range(1, len(strides) + 1) if strides[l - 1] == max(strides)]
    pairs = sorted({tuple(sorted((a, b), key=lambda k: int(k.split("_")[1])))
                    for a, b in itertools.product(ranked[: args.top], late) if a != b})
    print("layers by validation accuracy:", [(k, round(valid[k], 4)) for k in ranked])
    print("candidate fusions:", pairs)

    candidates = [Representation("+".join(p), "fusion", "+".join(p), tuple(int(k.split("_")[1]) for k in p))
                  for p in pairs]
    runner._Views = ConcatViews
    settings = RunSettings(data_dir=args.data_dir, cache_dir=args.cache_dir,
                           cache_tags={"precision": "no", "datasets": _version("datasets").split(".")[0],
                                       "torchcodec": _version("torchcodec")})
    from accelerate import Accelerator

    accelerator, metric = Accelerator(), load_accuracy_metric()
    results = {}
    for name in tasks:
        task = resolve_task(name)
        table, runs = plan_task(task, embedder, settings)
        embedder.representations = sweep_representations  # the cache holds these
        prepared = prepare_task(accelerator, embedder, embedder.cache_key(), task, table, runs, settings)
        if prepared.clips_encoded:
            raise RuntimeError(f"{name}: {prepared.clips_encoded} clips were not in the sweep's cache")
        embedder.representations = candidates
        results[name] = probe_task(prepared, embedder, settings, metric)
    summary = []
    for rep in candidates:
        per_task = {name: {"valid": validation_accuracy(r["representations"][rep.key]),
                           "test_mean": r["representations"][rep.key]["mean"],
                           "test_std": r["representations"][rep.key]["std"]} for name, r in results.items()}
        summary.append({"layers": list(rep.layers), "tasks": per_task})
    write_choice({k: float(valid[k]) for k in ranked}, summary, Path(args.output))


def write_choice(layer_validation, candidates, output):
    """Rank the candidates by mean validation accuracy over their tasks; write candidates.json."""
    for candidate in candidates:
        candidate["mean_valid"] = float(np.mean([v["valid"] for v in candidate["tasks"].values()]))
    candidates.sort(key=lambda c: -c["mean_valid"])
    output.mkdir(parents=True, exist_ok=True)
    (output / "candidates.json").write_text(json.dumps({
        "layer_validation": layer_validation, "candidates": candidates, "chosen": candidates[0]["layers"]}, indent=1))
    for c in candidates:
        print(c["layers"], round(c["mean_valid"], 4), {n: round(v["test_mean"], 4) for n, v in c["tasks"].items()})
    print("chosen (best mean validation accuracy):", candidates[0]["layers"])


def _version(name):
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
