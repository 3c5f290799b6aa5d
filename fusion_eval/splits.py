"""Which rows train, validate and test each probe (EVAR's rules), and the class-complete validation draw."""

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

VALIDATION_FRACTION = 0.1
VALIDATION_ATTEMPTS = 100


@dataclass
class ProbeRun:
    """One probe of a task: row ids (into the TaskTable) of each role; `valid` None = carve from train."""

    name: str
    train: np.ndarray
    valid: np.ndarray | None
    test: np.ndarray


def probe_runs(task, table):
    """Leave-one-fold-out over `task.folds` (default: every fold present), or the train/valid/test split.

    A task without a valid split (every fold task, and split tasks such as FSDD) gets its validation
    set drawn from the training rows inside the probe, after the scaler is fit (EVAR).
    """
    if table.fold is not None:
        present = sorted(set(table.fold.tolist()))
        folds = list(task.folds) if task.folds else present
        missing = sorted(set(folds) - set(present))
        if missing:
            raise ValueError(f"task {task.name!r}: folds {missing} have no rows (the data has folds {present})")
        if len(folds) < 2:
            raise ValueError(f"task {task.name!r}: leave-one-fold-out needs at least 2 folds, got {folds}")
        used = np.isin(table.fold, folds)
        return [
            ProbeRun(f"fold {k}", np.flatnonzero(used & (table.fold != k)), None, np.flatnonzero(table.fold == k))
            for k in folds
        ]
    rows = {name: np.flatnonzero(table.split == name) for name in ("train", "valid", "test")}
    for name in ("train", "test"):
        if rows[name].size == 0:
            raise ValueError(f"task {task.name!r}: the split column has no {name!r} rows")
    return [ProbeRun("split", rows["train"], rows["valid"] if rows["valid"].size else None, rows["test"])]


def class_complete_split(labels, random_state, fraction=VALIDATION_FRACTION, attempts=VALIDATION_ATTEMPTS):
    """Positions (train, valid) of a random `fraction` hold-out that contains every class of `labels`.

    Draws sklearn's `train_test_split` (ceil(fraction * n) held out, in permutation order) from the
    numpy RandomState `random_state` up to `attempts` times, like EVAR's `train_test_sure_split`.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    positions = np.arange(len(labels))
    for _ in range(attempts):
        train, valid = train_test_split(positions, test_size=fraction, random_state=random_state)
        if np.unique(labels[valid]).size == classes.size:
            return train, valid
    counts = np.unique(labels, return_counts=True)[1]
    raise ValueError(
        f"could not draw a {fraction:.0%} validation split holding all {classes.size} classes in {attempts} "
        f"attempts ({len(labels)} training clips, the rarest class has {counts.min()}); give the task a "
        "valid split or more training clips per class"
    )
