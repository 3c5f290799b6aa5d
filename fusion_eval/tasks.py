"""The task registry: the paper's nine linear-evaluation tasks and the project's four local ones.

Each task says where its audio is, which column holds the label, how it is split (a `split` column of
train/valid/test, or leave-one-fold-out over a `fold` column), the clip length `unit_sec` every clip
is fixed to, and the paper's per-task learning rates (paper_method.md section 3.3) keyed "family" or
"family/kind", kind = fusion | layer | plain.

Routes, in the order `datasource.load_table` tries them:
1. a local folder `--data-dir/<folder>` with `metadata.csv` (audiofolder layout), or EVAR's layout
   (`--metadata-dir/<folder>.csv`, made as `metadata_how` says);
2. a Hub dataset `hub_id` (config `hub_config`) at `hub_revision`, whose split names become the split
   column, optionally joined with a split file (`split_file`, from `split_file_url`) on `join_column`.

Hub copies were checked against their dataset cards (Nov 2026); a revision is pinned where the card's
commit history gave a full commit sha, else the task loads `main` ("unpinned").
"""

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

# nttcslab/eval-audio-repr (EVAR) at the commit whose metadata files and make_metadata.py were read.
EVAR = "https://github.com/nttcslab/eval-audio-repr/blob/0a546e68ddcd45e0008318f809c605eecab3582b"
EVAR_RAW = "https://raw.githubusercontent.com/nttcslab/eval-audio-repr/0a546e68ddcd45e0008318f809c605eecab3582b"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class Task:
    """One classification task.

    folder: relative to `--data-dir`; dataset_dir: a local folder `datasets.load_dataset` reads (parquet
    shards in the Hub's `data/<split>-*.parquet` layout); hub_id/hub_config/hub_revision: a Hub dataset
    (revision None = `main`, unpinned); split_file: a CSV joined on `join_column` by file name (no folder/extension)
    (a bare name is looked up in `--metadata-dir`, then `--data-dir`).
    """

    name: str
    title: str
    unit_sec: float
    label_column: str = "label"
    split_column: str | None = None
    fold_column: str | None = None
    folds: tuple | None = None
    folder: str | None = None
    metadata_how: str = ""
    dataset_dir: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None
    hub_label_column: str | None = None
    hub_size: str = ""
    split_file: str | None = None
    split_file_url: str | None = None
    join_column: str | None = None
    lr: dict = field(default_factory=dict)
    note: str = ""

    def learning_rate(self, family, kind, default=3e-4):
        """The paper's lr for this task and representation ("cnn14", "layer"), else `default`."""
        return self.lr.get(f"{family}/{kind}", self.lr.get(family, default))

    def split_rule(self):
        """How the probes split the rows, in words."""
        if self.fold_column:
            folds = ", ".join(map(str, self.folds)) if self.folds else "every fold present"
            return f"leave-one-fold-out over '{self.fold_column}' ({folds})"
        where = f"the split file's '{self.split_column or 'split'}'" if self.split_file else (
            f"column '{self.split_column}'" if self.split_column else "the dataset's split names")
        return f"train/valid/test from {where}"

    def hub_source(self):
        """'owner/name [config] @ revision' (or '@ main (unpinned)'), None without a Hub route."""
        if not self.hub_id:
            return None
        config = f" [{self.hub_config}]" if self.hub_config else ""
        return f"{self.hub_id}{config} @ {self.hub_revision or 'main (unpinned)'}"


# Table III order. The Hub copies' layouts (dataset cards, read Nov 2026):
#   ashraq/esc50: parquet, one `train` split of 2,000 rows, `category`, `fold` 1-5; main = 5c72356 (README).
#   danavery/urbansound8K: parquet, 8,732 rows, `class`, `fold` 1-10 (its label column was renamed once).
#   confit/gtzan: parquet, train/validation/test = 443/197/290 (Kereliuk et al.'s fault-filtered split),
#     `genre` (str) and `label` (ClassLabel of the same 10 genres), 22.05 kHz.
#   confit/nsynth-parquet, config `instrument`: train/validation/test = 289,205/12,678/4,096 (the official
#     split), `label` = ClassLabel of the 11 instrument families (bass ... vocal; confit's builder), 16 kHz.
#   AbstractTTS/CREMA-D: parquet, one `train` split of 7,442 rows, `file` (e.g. 1001_DFA_ANG_XX.wav),
#     `major_emotion` (crowd-rated, not the acted emotion); main = 5a17278. EVAR's cremad.csv has 7,438 rows.
PAPER_TASKS = (
    Task("esc50", "ESC-50", 5.0, fold_column="fold", folds=(1, 2, 3, 4, 5), folder="esc50",
         metadata_how=f"EVAR: python evar/utils/make_metadata.py esc50 <ESC-50-master> ({EVAR}/Preparing-datasets.md)",
         hub_id="ashraq/esc50", hub_revision="5c72356dbaaa04826a28c94283a15b112ddeca02",
         hub_label_column="category", hub_size="0.8 GB", lr={"vggish/plain": 3e-3},
         note="Official 5 folds in the 'fold' column."),
    Task("us8k", "US8K", 4.0, fold_column="fold", folds=tuple(range(1, 11)), folder="us8k",
         metadata_how=f"EVAR: python evar/utils/make_metadata.py us8k <UrbanSound8K> ({EVAR}/Preparing-datasets.md)",
         hub_id="danavery/urbansound8K", hub_label_column="class", hub_size="7 GB",
         note="Official 10 folds in the 'fold' column. No full commit sha of the finished upload is known."),
    Task("spcv2", "SPCV2", 1.0, split_column="split", folder="spcv2",
         metadata_how=f"EVAR: python evar/utils/make_metadata.py spcv2 <speech_commands_v0.02> -> evar/metadata/"
                      f"spcv2.csv (file_name,label,split; {EVAR}/evar/utils/make_metadata.py)",
         note="35 words, official validation_list/testing_list. google/speech_commands is a loading script "
              "(datasets >= 4 cannot run it) and its test split is the 12-class set: no Hub route."),
    Task("vc1", "VC1", 8.2, split_column="split", folder="vc1", lr={"vggish": 5e-4},
         metadata_how=f"EVAR: python evar/utils/make_metadata.py vc1 -> evar/metadata/vc1.csv (file_name,label,"
                      f"split from VoxCeleb1 iden_split.txt; audio under wav/; {EVAR}/evar/utils/make_metadata.py)",
         note="VoxCeleb1 identification (1,251 speakers); no Hub copy with iden_split."),
    Task("voxforge", "VF", 5.8, split_column="split", folder="voxforge",
         metadata_how=f"EVAR ships evar/metadata/voxforge.csv; audio: python evar/utils/download_voxforge.py "
                      f"({EVAR}/Preparing-datasets.md)",
         note="Language ID (6 languages); no Hub copy with EVAR's split."),
    Task("cremad", "CRM-D", 2.5, split_column="split", folder="cremad",
         metadata_how=f"EVAR ships evar/metadata/cremad.csv ({EVAR_RAW}/evar/metadata/cremad.csv)",
         hub_id="AbstractTTS/CREMA-D", hub_revision="5a172780c79bbddb9b326a2c830447c550a216a4", hub_size="0.6 GB",
         split_file="cremad.csv", split_file_url=f"{EVAR_RAW}/evar/metadata/cremad.csv", join_column="file",
         note="EVAR's speaker-disjoint split (file_name,label,speaker_id,split). Labels are the acted emotion "
              "code of the file name (cremad.csv's 'label', e.g. ANG from 1001_DFA_ANG_XX.wav), not the Hub "
              "copy's crowd-rated 'major_emotion'. Hub rows missing from the CSV are dropped and counted."),
    Task("gtzan", "GTZAN", 30.0, split_column="split", folder="gtzan",
         metadata_how=f"EVAR: python evar/utils/make_metadata.py gtzan <genres> ({EVAR}/Preparing-datasets.md)",
         hub_id="confit/gtzan", hub_label_column="genre", hub_size="1.2 GB",
         note="Fault-filtered split 443/197/290 (jongpillee/music_dataset_split), as EVAR's gtzan.csv. "
              "No full commit sha of confit/gtzan is known."),
    Task("nsynth", "NSynth", 4.0, split_column="split", folder="nsynth", lr={"cnn14": 1e-5},
         metadata_how=f"EVAR: python evar/utils/make_metadata.py nsynth <nsynth> ({EVAR}/Preparing-datasets.md)",
         hub_id="confit/nsynth-parquet", hub_config="instrument", hub_label_column="label", hub_size="29 GB",
         note="Instrument family (11), official train/valid/test, as EVAR's instrument_family_str. "
              "No full commit sha of the main branch is known."),
    Task("surge", "Surge", 4.0, split_column="split", folder="surge",
         lr={"cnn14/fusion": 3e-5, "cnn14/layer": 3e-5, "vggish/fusion": 1e-4, "ast": 1e-4},
         metadata_how=f"EVAR: python evar/utils/make_metadata.py surge <surge> -> evar/metadata/surge.csv (tone "
                      f"split from evar/predefined/dataset_surge_tone_splits.csv; {EVAR}/evar/utils/make_metadata.py)",
         note="Pitch Audio Dataset (Zenodo 4677097), 88 pitches; no Hub copy."),
)

# Real data shipped beside the project in ../shared/data (see its README), in audiofolder layout.
LOCAL_TASKS = (
    Task("fsdd", "FSDD digits", 1.0, split_column="split", folder="fsdd",
         note="Free Spoken Digit Dataset at 8 kHz (resampled on load); takes 0-4 are test."),
    Task("fsdd-speaker", "FSDD speaker", 1.0, label_column="speaker", split_column="split", folder="fsdd",
         note="FSDD with the speaker (6) as the label, same split."),
    Task("spcv2-test-folds", "SPCV2 test (5 folds)", 1.0, fold_column="fold", folds=(1, 2, 3, 4, 5),
         folder="speech_commands_v2_test", note="Speech Commands v2 12-class test set, speaker-disjoint folds."),
    Task("us8k-3folds", "US8K (3 folds)", 4.0, fold_column="fold", folds=(1, 2, 10),
         folder="urbansound8k_3folds", note="UrbanSound8K folds 1, 2 and 10."),
)

TASKS = {task.name: task for task in PAPER_TASKS + LOCAL_TASKS}


def resolve_task(spec, unit_sec=None, label_column=None, split_column=None, fold_column=None,
                 split_file=None, join_column=None):
    """A task spec -> Task. A spec is a registry name; a folder with a `metadata.csv` (audiofolder); any
    other folder `datasets.load_dataset` reads (e.g. parquet shards `data/<split>-*.parquet`); or a Hub
    dataset id `owner/name[@revision]`. The last three are custom tasks named after the folder or id.

    Column, `unit_sec` and split-file arguments override the registry; a custom task needs `unit_sec`.
    Without a split/fold column a custom task uses `split` (a dataset's split names, or a metadata.csv
    column) if there is one, else `fold`. Raises ValueError for an unknown name or a bad argument.
    """
    if spec in TASKS:
        task = TASKS[spec]
    else:
        path = Path(spec)
        if (path.is_dir() or HUB_ID.match(spec.split("@")[0])) and unit_sec is None:
            raise ValueError(f"--unit-sec is required for the custom task {spec!r} (clip length in seconds)")
        if path.is_dir():
            path = path.resolve()
            if (path / "metadata.csv").is_file():
                task = Task(path.name, path.name, unit_sec, folder=str(path))
            else:
                task = Task(path.name, path.name, unit_sec, dataset_dir=str(path))
        elif HUB_ID.match(spec.split("@")[0]) and spec.count("@") <= 1:
            hub_id, _, revision = spec.partition("@")
            task = Task(spec, hub_id, unit_sec, hub_id=hub_id, hub_revision=revision or None)
        else:
            raise ValueError(
                f"unknown task {spec!r}: give one of {sorted(TASKS)}, a folder (with a metadata.csv, or "
                "parquet shards data/<split>-*.parquet), or a Hub dataset id owner/name[@revision]"
            )
    changes = {}
    if unit_sec is not None:
        if unit_sec <= 0:
            raise ValueError(f"--unit-sec must be positive, got {unit_sec}")
        changes["unit_sec"] = float(unit_sec)
    if label_column:
        changes.update(label_column=label_column, hub_label_column=None)
    if split_column and fold_column:
        raise ValueError("give --split-column or --fold-column, not both")
    if split_column:
        changes.update(split_column=split_column, fold_column=None, folds=None)
    if fold_column:
        changes.update(fold_column=fold_column, split_column=None, folds=None)
    if join_column and not (split_file or task.split_file):
        raise ValueError("--join-column needs --split-file (a CSV of file_name and split or fold)")
    if split_file:
        join = join_column or task.join_column or ("file_name" if task.folder else None)
        if not join:
            raise ValueError("--split-file needs --join-column: the dataset column holding each clip's file name")
        changes.update(split_file=str(split_file), split_file_url=None, join_column=join)
    elif join_column:
        changes["join_column"] = join_column
    return replace(task, **changes)


def local_paths(task, data_dir, metadata_dir=None):
    """(audio folder, metadata CSV) of a task's local route, or (None, None) without one."""
    if not task.folder:
        return None, None
    folder = Path(data_dir, task.folder)
    return folder, Path(metadata_dir, f"{folder.name}.csv") if metadata_dir else folder / "metadata.csv"


def split_file_path(task, data_dir, metadata_dir=None):
    """The task's split file: the path given, or a bare registry name found in `metadata_dir`, then
    `data_dir`. None without a split file; a missing file -> the first place looked (to name in errors)."""
    if not task.split_file:
        return None
    given = Path(task.split_file)
    if given.parent != Path(".") or given.is_file():
        return given
    places = [Path(d, given) for d in (metadata_dir, data_dir) if d]
    return next((p for p in places if p.is_file()), places[0])


def _in_hub_cache(hub_id):
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE, f"datasets--{hub_id.replace('/', '--')}").is_dir()


def route(task, data_dir, metadata_dir=None):
    """'local', 'hub' or None: what `load_table` would use now (Hub = no local folder; needs network
    unless cached), None when it would fail (a local folder without its metadata, a split file still
    to download, or no source at all)."""
    folder, metadata = local_paths(task, data_dir, metadata_dir)
    if folder is not None and folder.is_dir():
        return "local" if metadata.is_file() else None
    split_file = split_file_path(task, data_dir, metadata_dir)
    if (task.hub_id or task.dataset_dir) and (split_file is None or split_file.is_file()):
        return "hub" if task.hub_id else "dataset"
    return None


def list_tasks(data_dir, metadata_dir=None):
    """Text of `fusion-eval --list-tasks`: every registry task, its routes, and what is found locally.
    Reads only the file system (no model, no network)."""
    found = lambda ok: "found" if ok else "not found"  # noqa: E731
    lines = [f"Tasks (data dir {data_dir}" + (f", metadata dir {metadata_dir}" if metadata_dir else "") + ")", ""]
    for group, tasks in (("The paper's nine tasks (Table III)", PAPER_TASKS), ("Local tasks", LOCAL_TASKS)):
        lines += [f"== {group} ==", ""]
        for task in tasks:
            lines.append(f"{task.name}: {task.title}, clips fixed to {task.unit_sec:g} s, {task.split_rule()}")
            folder, metadata = local_paths(task, data_dir, metadata_dir)
            if folder is not None:
                lines.append(f"  local folder: {folder} [{found(folder.is_dir())}], metadata {metadata} "
                             f"[{found(metadata.is_file())}], label '{task.label_column}'")
                if task.metadata_how:
                    lines.append(f"    metadata: {task.metadata_how}")
            if task.hub_id:
                size = f", about {task.hub_size}" if task.hub_size else ""
                label = f", label '{task.hub_label_column}'" if task.hub_label_column else ""
                cached = "in the Hub cache" if _in_hub_cache(task.hub_id) else "not in the Hub cache: downloads on first use"
                splits = "" if task.split_file or task.fold_column else ", its split names as the split"
                lines.append(f"  Hub: {task.hub_source()}{label}{splits}{size} [{cached}]")
            split_file = split_file_path(task, data_dir, metadata_dir)
            if split_file is not None:
                lines.append(f"    + split file {split_file} joined on '{task.join_column}' by file name "
                             f"[{found(split_file.is_file())}]" + (f"; download it from {task.split_file_url}"
                                                                   if task.split_file_url else ""))
            now = route(task, data_dir, metadata_dir)
            lines.append("  runs from: " + {"local": "the local folder", "hub": "the Hub" + (
                " + split file" if split_file else ""), None: "nothing found yet: " + (
                "the local folder's metadata is missing" if folder is not None and folder.is_dir() else
                "download the split file" if task.hub_id else "prepare the local folder and its metadata")}[now])
            if task.note:
                lines.append(f"  note: {task.note}")
            lines.append("")
    return "\n".join(lines)
