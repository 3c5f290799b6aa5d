"""Load a task's rows: audio (a `datasets` column of undecoded files), labels, split/fold.

The audio column is cast with `Audio(decode=False)` (path or bytes): `TaskTable.wave` decodes it at
the file's own rate and resamples with the package's one input path (`modeling_fusion.audio_input.
load_audio`, soxr HQ), so fusion-eval sees the same samples as fusion-embed and the pipeline.

Local data is a folder with a `metadata.csv` (audiofolder layout: `file_name` relative to the
folder), or EVAR's layout: audio under `--data-dir/<folder>` and `<metadata-dir>/<folder>.csv`.
Hub data is every split of `load_dataset(hub_id)`, concatenated; its split names become the split column.
"""

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Audio, ClassLabel, Dataset, concatenate_datasets, load_dataset

from modeling_fusion.audio_input import load_audio

SPLIT_NAMES = {"train": "train", "valid": "valid", "validation": "valid", "val": "valid", "test": "test"}


@dataclass
class TaskTable:
    """Rows of one task. audio: Dataset with one undecoded `audio` column ({"path", "bytes"}); the rest
    are arrays of n rows; sampling_rate: the rate `wave` returns, in Hz."""

    audio: Dataset
    names: list
    labels: np.ndarray
    split: np.ndarray | None
    fold: np.ndarray | None
    source: str
    source_key: str
    sampling_rate: int

    def __len__(self):
        return len(self.names)

    def wave(self, row):
        """Row `row`'s audio -> mono float32 [N] at `sampling_rate` (ValueError naming the file if unreadable)."""
        return load_audio(self.audio[row]["audio"], self.sampling_rate, name=self.names[row])


def load_table(task, data_dir, sampling_rate, metadata_dir=None):
    """Task -> TaskTable, from the local folder when it exists, else from the Hub."""
    folder = Path(data_dir, task.folder) if task.folder else None
    if folder is not None and folder.is_dir():
        metadata = Path(metadata_dir, f"{folder.name}.csv") if metadata_dir else folder / "metadata.csv"
        return _local_table(task, folder, metadata, sampling_rate)
    if task.hub_id:
        if task.hub_label_column and task.label_column == "label":
            task = replace(task, label_column=task.hub_label_column)
        return _hub_table(task, sampling_rate)
    raise ValueError(
        f"task {task.name!r}: no data at {folder} and no Hub dataset known. Put the audio there with a "
        f"metadata.csv (file_name,{task.label_column},{task.split_column or task.fold_column}), or pass "
        "--data-dir pointing at the folder that contains it."
    )


def _local_table(task, folder, metadata, sampling_rate):
    if not metadata.is_file():
        raise ValueError(f"task {task.name!r}: metadata file {metadata} not found (needs file_name and label columns)")
    frame = pd.read_csv(metadata)
    _require_columns(task, frame.columns, metadata)
    names = frame["file_name"].astype(str).tolist()
    paths = [str(folder / name) for name in names]
    if not any(Path(path).is_file() for path in paths[:1000]):
        raise ValueError(
            f"task {task.name!r}: none of the first files of {metadata} exist under {folder} (e.g. {paths[0]}); "
            "check --data-dir / --metadata-dir."
        )
    audio = Dataset.from_dict({"audio": paths}).cast_column("audio", Audio(decode=False))
    key = hashlib.sha256(metadata.read_bytes() + str(folder.resolve()).encode()).hexdigest()
    return _table(task, audio, names, frame, str(folder.resolve()), key, sampling_rate)


def _hub_table(task, sampling_rate):
    splits = load_dataset(task.hub_id, task.hub_config)
    parts, frames = [], []
    for split_name, part in splits.items():
        _require_columns(task, part.column_names + ["split"], task.hub_id, hub=True)
        columns = [c for c in (task.label_column, task.fold_column) if c and c in part.column_names]
        frame = part.select_columns(columns).to_pandas()
        feature = part.features[task.label_column]
        if isinstance(feature, ClassLabel):
            frame[task.label_column] = [feature.int2str(int(v)) for v in frame[task.label_column]]
        frame["split"] = split_name
        frames.append(frame)
        parts.append(part.select_columns(["audio"]))
    audio = concatenate_datasets(parts).cast_column("audio", Audio(decode=False))
    frame = pd.concat(frames, ignore_index=True)
    names = [f"{task.hub_id} row {i}" for i in range(len(frame))]
    key = hashlib.sha256(f"{task.hub_id}/{task.hub_config}/{[p._fingerprint for p in parts]}".encode()).hexdigest()
    return _table(task, audio, names, frame, task.hub_id, key, sampling_rate)


def _require_columns(task, columns, where, hub=False):
    needed = {"--label-column": task.label_column}
    if not hub:
        needed["file_name"] = "file_name"
    if task.split_column:
        needed["--split-column"] = task.split_column
    elif task.fold_column:
        needed["--fold-column"] = task.fold_column
    elif not {"split", "fold"} & set(columns):
        raise ValueError(f"{where} has neither a 'split' nor a 'fold' column; pass --split-column or --fold-column")
    for option, column in needed.items():
        if column not in columns:
            raise ValueError(f"{where} has no column {column!r} (set by {option}); columns are {list(columns)}")


def _table(task, audio, names, frame, source, key, sampling_rate):
    labels = frame[task.label_column].astype(str).to_numpy()
    split_column = task.split_column or (None if task.fold_column else ("split" if "split" in frame else None))
    fold_column = task.fold_column or (None if split_column else "fold")
    split = fold = None
    if split_column:
        raw = frame[split_column].astype(str).str.lower()
        unknown = sorted(set(raw) - set(SPLIT_NAMES))
        if unknown:
            raise ValueError(f"{source}: split column {split_column!r} has values {unknown}; use train/valid/test")
        split = raw.map(SPLIT_NAMES).to_numpy()
    else:
        fold = frame[fold_column].to_numpy()
        if not np.issubdtype(fold.dtype, np.integer):
            raise ValueError(f"{source}: fold column {fold_column!r} must hold integers, got {fold.dtype}")
    return TaskTable(audio, names, labels, split, fold, source, key, sampling_rate)
