"""A task in two phases: rows, roles and two-view extraction into the cache (all processes), then the
probes of every representation (main process), so no process waits in a collective while probes run.

Clips with a test role are encoded from their start; clips with a train/valid role at a random
offset. A clip that fits in `unit_sec` is the same audio either way, so once its start view is known
to be that short it is not encoded again (leave-one-fold-out uses every clip in both roles).
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from .cache import RowSelection, ViewCache, digest
from .datasource import load_table
from .extract import extract
from .probes import PROBES, WEIGHTED_SUM_PROBES
from .probes.linear import ProbeRandomness
from .splits import probe_runs

SEEDS = (42, 43, 44)


@dataclass
class RunSettings:
    data_dir: str
    cache_dir: str
    metadata_dir: str | None = None
    batch_size: int = 32
    num_workers: int = 0
    chunk_size: int = 512
    skip_bad: bool = False
    seeds: tuple = SEEDS
    crop_seed: int = 42
    lr: float | None = None
    export_classifier: bool = False
    audio_store: str | None = None  # folder of the prepared audio (fusion_eval.store); None decodes every pass
    streaming: bool = False  # Hub / dataset-folder tasks read with load_dataset(streaming=True)
    cache_tags: dict = field(default_factory=dict)
    probes: tuple = ("linear",)  # fusion_eval.probes names; the first fills each representation's mean/std


@dataclass
class PreparedTask:
    """A task whose embeddings are all in the cache: what the probes need."""

    task: object
    table: object
    runs: list
    start: ViewCache
    shuffled: ViewCache
    clips_encoded: int
    extraction_seconds: float


def plan_task(task, embedder, settings):
    """(table, probe runs) of a task: loads and checks its metadata before anything is encoded."""
    table = load_table(task, settings.data_dir, embedder.sampling_rate, settings.metadata_dir, settings.streaming)
    return table, probe_runs(task, table)


def prepare_task(accelerator, embedder, model_key, task, table, runs, settings):
    """Extract both views of a planned task into the cache (every process takes part)."""
    started = time.perf_counter()
    unit = int(round(task.unit_sec * embedder.sampling_rate))
    base = Path(settings.cache_dir, model_key[:20],
                f"{Path(table.source).name}-{digest(table.source_key, embedder.sampling_rate, unit, settings.cache_tags)}")
    test_rows = np.unique(np.concatenate([run.test for run in runs]))
    train_rows = np.unique(np.concatenate([np.concatenate([run.train] + ([run.valid] if run.valid is not None else []))
                                           for run in runs]))
    options = dict(batch_size=settings.batch_size, num_workers=settings.num_workers, skip_bad=settings.skip_bad,
                   audio_store=settings.audio_store)

    start = ViewCache(base / f"start-{digest(test_rows.tolist())}", test_rows, settings.chunk_size,
                      _meta(model_key, table, task, unit, "start", embedder))
    computed = extract(accelerator, embedder, table, start, "start", unit, settings.crop_seed,
                       desc=f"{task.name} test clips", **options)
    known = [None]
    if accelerator.is_main_process:
        lengths, ok = start.info()
        known = [start.rows[~ok | (lengths <= unit)].tolist()]  # bad, or the same audio in both views
    random_rows = np.setdiff1d(train_rows, broadcast_object_list(known)[0])
    rule = f"random{settings.crop_seed}"
    shuffled = ViewCache(base / f"{rule}-{digest(random_rows.tolist())}", random_rows, settings.chunk_size,
                         _meta(model_key, table, task, unit, rule, embedder))
    computed += extract(accelerator, embedder, table, shuffled, "random", unit, settings.crop_seed,
                        desc=f"{task.name} train clips", **options)
    return PreparedTask(task, table, runs, start, shuffled, computed, time.perf_counter() - started)


def probe_task(prepared, embedder, settings, metric, device="cpu", representations=None):
    """Probe `representations` (default: the embedder's) of a prepared task over the seeds with every probe
    of `settings.probes` (one process; a weighted sum of layers only with the probes that train it); returns its
    result dict. Each representation's `mean`/`std`/`seeds` are its first probe's (named in `probe`); the others
    are under `probes[name]` in the same layout."""
    started = time.perf_counter()
    task, table = prepared.task, prepared.table
    views = _Views(len(table), prepared.start, prepared.shuffled)
    result = {
        "title": task.title, "source": table.source, "data": table.provenance,
        "dataset_id": task.hub_id if table.source == task.hub_id else task.name, "unit_sec": task.unit_sec,
        "clips": len(table), "bad_files": [table.names[row] for row in np.flatnonzero(views.bad)],
        "runs": [run.name for run in prepared.runs], "seeds": list(settings.seeds), "representations": {},
    }
    runs = [_drop_bad(run, views.bad) for run in prepared.runs]
    for rep in tqdm(representations or embedder.representations, desc=f"{task.name} probes", unit="representation",
                    disable=None):
        lr = settings.lr or task.learning_rate(embedder.family, rep.kind)
        embeddings = views.load(rep)
        layers = len(rep.layers) if rep.kind == "weighted-sum" else 1
        probes = [p for p in settings.probes if layers == 1 or p in WEIGHTED_SUM_PROBES]
        summaries = {}
        for probe in probes:
            probe_started = time.perf_counter()
            per_seed = {}
            for seed in settings.seeds:
                randomness = ProbeRandomness(seed)
                folds = [_probe(PROBES[probe], run, embeddings, table.labels, randomness, lr, metric, device,
                                f"task {task.name!r}, representation {rep.key!r}, {probe} probe, {run.name} "
                                f"(cache {prepared.start.directory.parent})", layers) for run in runs]
                fitted = [fold.pop("probe") for fold in folds]
                if settings.export_classifier and probe == "linear" and rep.kind == "fusion" and "export" not in result:
                    result["export"] = _export(rep, seed, runs[0], fitted[0], table)
                per_seed[str(seed)] = {"accuracy": float(np.mean([f["accuracy"] for f in folds])), "runs": folds}
            scores = [s["accuracy"] for s in per_seed.values()]
            summaries[probe] = {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "seeds": per_seed,
                                "probe_seconds": time.perf_counter() - probe_started}
        primary = summaries.pop(probes[0])
        result["representations"][rep.key] = {  # dim: the width the probe reads (one layer's, for a weighted sum)
            "title": rep.title, "kind": rep.kind, "layers": list(rep.layers), "dim": int(embeddings.shape[1]) // layers,
            "lr": lr, **primary, "probe": probes[0], **({"probes": summaries} if summaries else {}),
        }
    result["timings"] = {"extraction_seconds": prepared.extraction_seconds, "clips_encoded": int(prepared.clips_encoded),
                         "probe_seconds": time.perf_counter() - started}
    return result


def score_candidates(prepared, embedder, settings, candidates, device="cpu"):
    """`selection.score_task` on a prepared task: {candidate layers: mean validation accuracy over its runs},
    from the cached single-layer embeddings of the training clips (no test clip is read)."""
    from .selection import score_task

    task, table = prepared.task, prepared.table
    views = _Views(len(table), prepared.start, prepared.shuffled)
    layers = sorted({layer for candidate in candidates for layer in candidate})
    opened = {}

    def layer_rows(layer, rows):
        if layer not in opened:
            opened[layer] = _Views(len(table), prepared.start, prepared.shuffled).load(f"layer_{layer}")
        return opened[layer].get(rows, "train")[np.arange(len(rows))]

    runs = [_drop_bad(run, views.bad) for run in prepared.runs]
    lr = settings.lr or task.learning_rate(embedder.family, "fusion")
    return score_task(task.name, runs, table.labels, layer_rows, layers, candidates, settings.seeds[0], lr, device)


class _Views:
    """Row -> embedding lookup over the start view (test role) and the random view (train role); `load`
    opens one representation lazily (`ViewCache.embeddings`) and `get` selects rows without reading them."""

    def __init__(self, n_rows, start, shuffled):
        self.caches = (start, shuffled)
        self.position = [np.full(n_rows, -1), np.full(n_rows, -1)]
        self.bad = np.zeros(n_rows, bool)
        for position, cache in zip(self.position, self.caches):
            position[cache.rows] = np.arange(len(cache.rows))
            self.bad[cache.rows[~cache.info()[1]]] = True

    def load(self, rep):
        """Open one representation (a cache key, or a Representation: one whose `parts` name cached
        representations is their concatenation, read lazily from each)."""
        parts = getattr(rep, "parts", ()) or (getattr(rep, "key", rep),)
        self.arrays = [_Concatenated([cache.embeddings(part) for part in parts]) if len(cache.rows) else None
                       for cache in self.caches]
        return self

    @property
    def shape(self):
        return next(a for a in self.arrays if a is not None).shape

    def get(self, rows, role):
        """RowSelection [len(rows), D]: test rows from the start view; train rows from the random view,
        or from the start view for clips whose two views are the same audio."""
        from_random = np.zeros(len(rows), bool) if role == "test" else self.position[1][rows] >= 0
        position = np.where(from_random, self.position[1][rows], self.position[0][rows])
        sources = [a if a is not None else self.arrays[1 - i] for i, a in enumerate(self.arrays)]  # empty: never picked
        return RowSelection(sources, from_random.astype(np.int64), position)


class _Concatenated:
    """Lazy row reads of several [n, D_i] arrays side by side: `x[positions]` -> [len(positions), sum D_i]."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.shape = (len(arrays[0]), sum(a.shape[1] for a in arrays))

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, positions):
        if len(self.arrays) == 1:
            return self.arrays[0][positions]
        return np.concatenate([a[positions] for a in self.arrays], axis=1)


def _drop_bad(run, bad):
    keep = lambda rows: None if rows is None else rows[~bad[rows]]  # noqa: E731
    return type(run)(run.name, keep(run.train), keep(run.valid), keep(run.test))


def _classes(labels):
    """Sorted unique labels; numerically when every label is an integer (as pandas would for EVAR)."""
    unique = set(labels.tolist())
    numeric = all(label.lstrip("-").isdigit() for label in unique)
    return sorted(unique, key=int if numeric else str)


def _probe(probe, run, embeddings, labels, randomness, lr, metric, device, name, layers):
    """One probe on one run; `layers` > 1: a weighted sum of that many layers (`--representation weighted-sum`)."""
    classes = _classes(labels[run.train])
    index = {label: i for i, label in enumerate(classes)}
    for role, rows in (("valid", run.valid), ("test", run.test)):
        unknown = sorted(set(labels[rows].tolist()) - set(classes)) if rows is not None else []
        if unknown:
            raise ValueError(f"{run.name}: {role} labels {unknown[:5]} never occur in training; fix the split")
    encode = lambda rows: np.array([index[label] for label in labels[rows]])  # noqa: E731
    options = {} if run.valid is None else {"x_valid": embeddings.get(run.valid, "train"), "y_valid": encode(run.valid)}
    if layers > 1:
        options["layers"] = layers
    result = probe(embeddings.get(run.train, "train"), encode(run.train), embeddings.get(run.test, "test"),
                   encode(run.test), len(classes), randomness, lr=lr, metric=metric, device=device, name=name, **options)
    return {"run": run.name, "accuracy": result.accuracy, "best_epoch": result.best_epoch, "epochs": result.epochs,
            "valid_accuracy": result.valid_accuracy, "train": len(run.train), "test": len(run.test),
            **({"chosen": result.chosen} if result.chosen else {}),
            **({"layer_weights": result.layer_weights} if result.layer_weights else {}), "probe": (classes, result)}


def _export(rep, seed, run, probe, table):
    """The classifier `--export-classifier` ships: the fusion's probe of the first seed on the first run
    (the test split, or fold 1 held out), with its test predictions to check the exported folder against."""
    classes, result = probe
    return {"representation": rep.key, "layers": list(rep.layers), "seed": seed, "run": run.name,
            "classes": [str(c) for c in classes], "weight": result.weight, "bias": result.bias,
            "test_files": [table.names[row] for row in run.test],
            "test_predictions": [str(classes[i]) for i in result.predictions]}


def _meta(model_key, table, task, unit, rule, embedder):
    return {"model": str(embedder.model_id), "model_key": model_key, "source": table.source, "task": task.name,
            "unit_samples": unit, "sampling_rate": embedder.sampling_rate, "clip_rule": rule}


def select_fusion(prepared, embedder, settings, max_layers=2, device="cpu"):
    """Rank every layer combination on validation data over the prepared tasks (`selection`'s criterion);
    returns the record results.json keeps under "selection": per-task and mean validation accuracy of
    every candidate ("12+14"), the chosen fusion, the best single layer, the criterion and its cost."""
    from . import selection

    started = time.perf_counter()
    layers = [rep.layers[0] for rep in embedder.representations if rep.kind == "layer"]
    candidates = selection.candidate_sets(layers, max_layers)
    scores = {}
    for item in tqdm(prepared, desc="select fusion", unit="task"):
        scores[item.task.name] = score_candidates(item, embedder, settings, candidates, device)
    mean, chosen, best_layer = selection.choose(scores)
    name = lambda c: "+".join(map(str, c))  # noqa: E731
    return {
        "criterion": f"best validation accuracy within {selection.EPOCHS} epochs of the linear probe (seed "
                     f"{settings.seeds[0]}), mean over each task's runs, then over tasks",
        "epochs": selection.EPOCHS, "seed": settings.seeds[0], "max_layers": max_layers, "layers": layers,
        "tasks": {task: {name(c): v for c, v in s.items()} for task, s in scores.items()},
        "mean": {name(c): v for c, v in mean.items()}, "chosen": chosen, "best_layer": best_layer,
        "seconds": time.perf_counter() - started,
    }
