"""Load a task's rows: audio (a `datasets` column of undecoded files), labels, split/fold.

The audio column is cast with `Audio(decode=False)` (path or bytes): `TaskTable.wave` decodes it at
the file's own rate and resamples with the package's one input path (`modeling_fusion.audio_input.
load_audio`, soxr HQ), so fusion-eval sees the same samples as fusion-embed and the pipeline.

Local data is a folder with a `metadata.csv` (audiofolder layout: `file_name` relative to the
folder), or EVAR's layout: audio under `--data-dir/<folder>` and `<metadata-dir>/<folder>.csv`.
A dataset folder (`load_dataset(folder)`, e.g. parquet shards `data/<split>-*.parquet`) or a Hub
dataset (`load_dataset(hub_id, hub_config, revision=hub_revision)`) gives every split, concatenated;
its split names become the split column. A split file (CSV of `file_name` or the join column, plus
`split` or `fold`, optionally the label) is then joined on the task's `join_column` by file name
without folder and extension: its split/fold/label columns replace the dataset's, rows absent from it
are dropped and counted.

Streaming (`load_table(..., streaming=True)`, `fusion-eval --streaming`) reads a Hub dataset or a dataset
folder with `load_dataset(..., streaming=True)`: nothing is downloaded ahead and no Arrow copy is written.
The labels, splits and join column are read first, in one pass over those columns only (parquet: a column
projection, so the audio bytes are not fetched); the audio column (`StreamedAudio`) is then read in order
each time a view is extracted, decoding only the rows that view still needs. Local audio folders are read
in place either way.
"""

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Audio, ClassLabel, Dataset, concatenate_datasets, load_dataset, load_dataset_builder

from modeling_fusion.audio_input import load_audio

from .tasks import local_paths, split_file_path

SPLIT_NAMES = {"train": "train", "valid": "valid", "validation": "valid", "val": "valid", "test": "test"}


@dataclass
class TaskTable:
    """Rows of one task. audio: Dataset with one undecoded `audio` column ({"path", "bytes"}); the rest
    are arrays of n rows; sampling_rate: the rate `wave` returns, in Hz; provenance: what was loaded
    (route, Hub revision requested and loaded, split file and the rows its join dropped)."""

    audio: Dataset
    names: list
    labels: np.ndarray
    split: np.ndarray | None
    fold: np.ndarray | None
    source: str
    source_key: str
    sampling_rate: int
    provenance: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.names)

    def wave(self, row):
        """Row `row`'s audio -> mono float32 [N] at `sampling_rate` (ValueError naming the file if unreadable)."""
        return load_audio(self.audio[row]["audio"], self.sampling_rate, name=self.names[row])

    @property
    def streamed(self):
        return isinstance(self.audio, StreamedAudio)

    def sources(self, rows):
        """The undecoded audio ({"path", "bytes"}) of `rows`, in that order, from one Arrow read."""
        if self.streamed:
            raise ValueError(f"{self.source} is streamed: read its rows in order with `audio.iterate(rows)`")
        return self.audio[[int(row) for row in rows]]["audio"]


class StreamedAudio:
    """The undecoded audio column of a streamed dataset: table row r is the `positions[r]`-th row of the
    stream of `splits` ((name, rows) in order, as the non-streamed table concatenates them)."""

    def __init__(self, task, splits, positions=None):
        self.task, self.splits = task, splits
        self.positions = np.arange(sum(n for _, n in splits)) if positions is None else np.asarray(positions)

    def __len__(self):
        return len(self.positions)

    def select(self, keep):
        return StreamedAudio(self.task, self.splits, self.positions[np.asarray(keep)])

    def iterate(self, rows):
        """(row, {"path", "bytes"}) of every row of `rows` (ascending), streamed in order; rows before each wanted
        row are read past without decoding, and the stream stops after the last one."""
        rows = np.asarray(rows, dtype=np.int64)
        wanted = self.positions[rows]
        if len(wanted) > 1 and (np.diff(wanted) <= 0).any():
            raise ValueError("streamed rows must be read in ascending order")
        start, next_wanted = 0, 0
        for name, count in self.splits:
            if next_wanted == len(wanted):
                return
            if wanted[next_wanted] >= start + count:
                start += count
                continue
            stream = _stream(self.task, ["audio"], name).cast_column("audio", Audio(decode=False))
            for position, item in enumerate(stream, start):
                if position == wanted[next_wanted]:
                    yield int(rows[next_wanted]), item["audio"]
                    next_wanted += 1
                    if next_wanted == len(wanted) or wanted[next_wanted] >= start + count:
                        break
            start += count


def _stream(task, columns, split=None):
    """`load_dataset(..., streaming=True)` of the task's dataset with only `columns` (parquet reads just them)."""
    path = task.hub_id or task.dataset_dir
    options = dict(name=task.hub_config, revision=task.hub_revision, split=split, streaming=True)
    try:
        return load_dataset(path, columns=columns, **options)
    except (TypeError, ValueError):  # a builder without column projection: every column is read, then dropped
        return load_dataset(path, **options).select_columns(columns)


def _streamed_frame(task):
    """`_dataset_frame` for a streamed dataset: the label/fold/split/join columns of every split, read in one pass
    over those columns; the audio stays in the stream (`StreamedAudio`). Its key names the data files (their
    content is not read to hash it), so it differs from the non-streamed one's."""
    path = task.hub_id or task.dataset_dir
    builder = load_dataset_builder(path, task.hub_config, revision=task.hub_revision)
    wanted = [c for c in dict.fromkeys((task.label_column, task.fold_column, task.split_column, task.join_column)) if c]
    streams = load_dataset(path, task.hub_config, revision=task.hub_revision, streaming=True)  # reads no rows
    frames, splits = [], []
    for split_name, part in streams.items():
        if "audio" not in (part.column_names or []):
            raise ValueError(f"{path} ({split_name}) has no 'audio' column; columns are {part.column_names}")
        present = [c for c in wanted if c in part.column_names]
        frame = pd.DataFrame(list(_stream(task, present, split_name)), columns=present)
        frames.append(_named_labels(task, frame, part.features, split_name))
        splits.append((split_name, len(frame)))
    frame = pd.concat(frames, ignore_index=True)
    join = frame[task.join_column].astype(str) if task.join_column in frame else None
    frame["name"] = join if join is not None else [f"{path} row {i}" for i in range(len(frame))]
    files = {name: [str(f) for f in found] for name, found in (builder.config.data_files or {}).items()}
    key = hashlib.sha256(f"streamed/{path}/{task.hub_config}/{builder.hash}/{files}/{splits}".encode()).hexdigest()
    provenance = {"route": ("Hub" if task.hub_id else "dataset folder") + ", streamed", "dataset": path,
                  "config": task.hub_config, "revision_requested": task.hub_revision or ("main" if task.hub_id else None),
                  "revision": builder.hash if task.hub_id else None, "data_files": files}
    return StreamedAudio(task, splits), frame, path, key, provenance


def load_table(task, data_dir, sampling_rate, metadata_dir=None, streaming=False):
    """Task -> TaskTable: the local folder when it exists, else the dataset folder or Hub dataset (streamed
    with `streaming`: its audio is a `StreamedAudio`); then the split file, if the task has one. `provenance`
    records what was loaded (Hub revision, split file and the rows it dropped). Raises ValueError naming what
    is missing and where to get it."""
    folder, metadata = local_paths(task, data_dir, metadata_dir)
    split_file = split_file_path(task, data_dir, metadata_dir)
    if split_file is not None and not split_file.is_file():  # before any download
        download = f"; download it from {task.split_file_url} to {split_file}" if task.split_file_url else ""
        raise ValueError(f"task {task.name!r}: split file {split_file} not found{download} (or pass --split-file)")
    if folder is not None and folder.is_dir():
        audio, frame, source, key, provenance = _local_frame(task, folder, metadata)
    elif task.hub_id or task.dataset_dir:
        if task.hub_label_column and task.label_column == "label":
            task = replace(task, label_column=task.hub_label_column)
        audio, frame, source, key, provenance = (_streamed_frame if streaming else _dataset_frame)(task)
    else:
        how = f" Metadata: {task.metadata_how}." if task.metadata_how else ""
        raise ValueError(
            f"task {task.name!r}: no data at {folder} and no Hub dataset known. Put the audio there with a "
            f"metadata.csv (file_name,{task.label_column},{task.split_column or task.fold_column}), or pass "
            f"--data-dir (and --metadata-dir for EVAR's layout) pointing at it.{how}"
        )
    if split_file is not None:
        keep, frame, joined = _join_split_file(task, frame, split_file, source)
        audio = audio.select(keep)
        key = hashlib.sha256((key + joined["split_file_sha256"]).encode()).hexdigest()
        provenance.update(joined)
    _require_columns(task, frame.columns, source, file_name=folder is not None and folder.is_dir())
    names = frame["file_name" if "file_name" in frame else "name"].astype(str).tolist()
    return _table(task, audio, names, frame, source, key, sampling_rate, provenance)


def _local_frame(task, folder, metadata):
    if not metadata.is_file():
        raise ValueError(f"task {task.name!r}: metadata file {metadata} not found (needs file_name and label columns)"
                         + (f"; {task.metadata_how}" if task.metadata_how else ""))
    frame = pd.read_csv(metadata)
    if "file_name" not in frame:
        raise ValueError(f"{metadata} has no column 'file_name'; columns are {list(frame.columns)}")
    names = frame["file_name"].astype(str).tolist()
    paths = [str(folder / name) for name in names]
    if not any(Path(path).is_file() for path in paths[:1000]):
        raise ValueError(
            f"task {task.name!r}: none of the first files of {metadata} exist under {folder} (e.g. {paths[0]}); "
            "check --data-dir / --metadata-dir."
        )
    audio = Dataset.from_dict({"audio": paths}).cast_column("audio", Audio(decode=False))
    key = hashlib.sha256(metadata.read_bytes() + str(folder.resolve()).encode()).hexdigest()
    return audio, frame, str(folder), key, {"route": "local folder", "metadata": str(metadata)}  # as given


def _dataset_frame(task):
    """Every split of a Hub dataset (at the task's revision) or a local dataset folder, concatenated:
    (audio, frame of the label/fold/join columns + `split` = split name + `name`, source, key, provenance)."""
    path = task.hub_id or task.dataset_dir
    builder = load_dataset_builder(path, task.hub_config, revision=task.hub_revision)
    builder.download_and_prepare()
    splits = builder.as_dataset()
    parts, frames = [], []
    for split_name, part in splits.items():
        if "audio" not in part.column_names:
            raise ValueError(f"{path} ({split_name}) has no 'audio' column; columns are {part.column_names}")
        wanted = (task.label_column, task.fold_column, task.split_column, task.join_column)
        frame = part.select_columns([c for c in dict.fromkeys(wanted) if c and c in part.column_names]).to_pandas()
        frames.append(_named_labels(task, frame, part.features, split_name))
        parts.append(part.select_columns(["audio"]))
    audio = concatenate_datasets(parts).cast_column("audio", Audio(decode=False))
    frame = pd.concat(frames, ignore_index=True)
    join = frame[task.join_column].astype(str) if task.join_column in frame else None
    frame["name"] = join if join is not None else [f"{path} row {i}" for i in range(len(frame))]
    key = hashlib.sha256(f"{path}/{task.hub_config}/{builder.hash}/{[p._fingerprint for p in parts]}".encode()).hexdigest()
    provenance = {"route": "Hub" if task.hub_id else "dataset folder", "dataset": path, "config": task.hub_config,
                  "revision_requested": task.hub_revision or ("main" if task.hub_id else None),
                  "revision": builder.hash if task.hub_id else None,
                  "fingerprints": {name: part._fingerprint for name, part in splits.items()}}
    return audio, frame, path, key, provenance


def _join_split_file(task, frame, path, where):
    """(kept row indices, joined frame, provenance) of a split file joined on `task.join_column`."""
    split = pd.read_csv(path)
    key = task.join_column if task.join_column in split else "file_name"
    if key not in split or not {"split", "fold"} & set(split.columns):
        raise ValueError(f"split file {path} needs a 'file_name' (or {task.join_column!r}) column and a 'split' or "
                         f"'fold' column; it has {list(split.columns)}")
    if task.join_column not in frame:
        raise ValueError(f"{where} has no column {task.join_column!r} (set by --join-column) to join {path} on; "
                         f"columns are {[c for c in frame.columns if c != 'name']}")
    # the file's stem: no folder, no extension (a Hub copy may store paths, or re-encode .wav to .flac)
    base = lambda names: names.astype(str).str.replace("\\", "/").str.rsplit("/", n=1).str[-1].str.replace(  # noqa: E731
        r"\.[A-Za-z0-9]{1,5}$", "", regex=True)
    split_keys = base(split[key])
    duplicated = sorted(set(split_keys[split_keys.duplicated()]))
    if duplicated:
        raise ValueError(f"split file {path}: file names {duplicated[:5]} occur more than once")
    position = pd.Index(split_keys).get_indexer(base(frame[task.join_column]))
    keep = np.flatnonzero(position >= 0)
    if len(keep) == 0:
        raise ValueError(f"no file name of {where}'s {task.join_column!r} (e.g. {frame[task.join_column].iloc[0]!r}) "
                         f"is in {path}'s {key!r} (e.g. {split[key].iloc[0]!r})")
    columns = {c for c in ("split", "fold", task.label_column, task.split_column, task.fold_column) if c in split}
    joined = frame.iloc[keep].drop(columns=[c for c in ("split", "fold") if c in frame]).reset_index(drop=True)
    for column in columns:
        joined[column] = split[column].to_numpy()[position[keep]]
    return keep, joined, {
        "split_file": str(path), "split_file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "join_column": task.join_column, "rows_before_join": len(frame), "rows_dropped": int(len(frame) - len(keep)),
        "split_file_rows_unmatched": int(len(split) - len(keep)),
    }


def _require_columns(task, columns, where, file_name=False):
    needed = {"--label-column": task.label_column}
    if file_name:
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


def _table(task, audio, names, frame, source, key, sampling_rate, provenance):
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
    return TaskTable(audio, names, labels, split, fold, source, key, sampling_rate, provenance)


def _named_labels(task, frame, features, split_name):
    """A split's label/fold/split columns with ClassLabel integers as their names, and its `split` column
    (the task's split column, else the dataset split's name)."""
    for column in frame.columns:
        feature = features[column]
        if isinstance(feature, ClassLabel):
            frame[column] = [feature.int2str(int(v)) for v in frame[column]]
    frame["split"] = frame[task.split_column] if task.split_column in frame else split_name
    return frame

