"""The task registry: the paper's nine linear-evaluation tasks and the project's three local ones.

Each task says where its audio is (a folder under `--data-dir`, or a Hub dataset), which column holds
the label, how it is split (a `split` column of train/valid/test, or leave-one-fold-out over a
`fold` column), the clip length `unit_sec` every clip is fixed to, and the paper's per-task learning
rates (paper_method.md section 3.3) keyed "family" or "family/kind", kind = fusion | layer | plain.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Task:
    """One classification task; `folder` is relative to `--data-dir`, `hub_id` is a Hub dataset."""

    name: str
    title: str
    unit_sec: float
    label_column: str = "label"
    split_column: str | None = None
    fold_column: str | None = None
    folds: tuple | None = None
    folder: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    hub_label_column: str | None = None
    lr: dict = field(default_factory=dict)
    note: str = ""

    def learning_rate(self, family, kind, default=3e-4):
        """The paper's lr for this task and representation ("cnn14", "layer"), else `default`."""
        return self.lr.get(f"{family}/{kind}", self.lr.get(family, default))


# Table III order. Hub ids are believed to exist but could not be checked offline; the tasks without
# one have no Hub copy with the paper's split that we know of: use EVAR's metadata + a local folder.
PAPER_TASKS = (
    Task("esc50", "ESC-50", 5.0, fold_column="fold", folds=(1, 2, 3, 4, 5), folder="esc50",
         hub_id="ashraq/esc50", hub_label_column="category", lr={"vggish/plain": 3e-3},
         note="Hub copy: official 5 folds in its 'fold' column."),
    Task("us8k", "US8K", 4.0, fold_column="fold", folds=tuple(range(1, 11)), folder="us8k",
         hub_id="danavery/urbansound8K", hub_label_column="class",
         note="Hub copy: official 10 folds in its 'fold' column."),
    Task("spcv2", "SPCV2", 1.0, split_column="split", folder="spcv2",
         note="35 words, official validation/testing lists. google/speech_commands is script-based and its "
              "test split is the 12-class test set, not testing_list.txt: no suitable Hub copy."),
    Task("vc1", "VC1", 8.2, split_column="split", folder="vc1", lr={"vggish": 5e-4},
         note="VoxCeleb1 identification, iden_split.txt; no Hub copy with this split."),
    Task("voxforge", "VF", 5.8, split_column="split", folder="voxforge", note="EVAR's voxforge.csv; no Hub copy."),
    Task("cremad", "CRM-D", 2.5, split_column="split", folder="cremad",
         note="EVAR's speaker-disjoint cremad.csv; no Hub copy with this split."),
    Task("gtzan", "GTZAN", 30.0, split_column="split", folder="gtzan",
         note="Fault-filtered split (jongpillee/music_dataset_split); marsyas/gtzan is script-based, no such split."),
    Task("nsynth", "NSynth", 4.0, split_column="split", folder="nsynth", lr={"cnn14": 1e-5},
         note="Instrument family, official train/valid/test; no Hub copy confirmed."),
    Task("surge", "Surge", 4.0, split_column="split", folder="surge",
         lr={"cnn14/fusion": 3e-5, "cnn14/layer": 3e-5, "vggish/fusion": 1e-4, "ast": 1e-4},
         note="Pitch Audio Dataset (Zenodo 4677097), EVAR's tone split; no Hub copy."),
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


def resolve_task(spec, unit_sec=None, label_column=None, split_column=None, fold_column=None):
    """A registry name, or a folder path (a custom task named after the folder) -> Task.

    Column and `unit_sec` arguments override the registry; a custom folder needs `unit_sec`, and
    without a split/fold column it uses `split` if `metadata.csv` has one, else `fold`.
    """
    if spec in TASKS:
        task = TASKS[spec]
    elif Path(spec).is_dir():
        if unit_sec is None:
            raise ValueError(f"--unit-sec is required for the custom task folder {spec!r} (clip length in seconds)")
        path = Path(spec).resolve()
        task = Task(path.name, path.name, unit_sec, folder=str(path))
    else:
        raise ValueError(
            f"unknown task {spec!r}: give one of {sorted(TASKS)} or an existing folder with a metadata.csv"
        )
    changes = {}
    if unit_sec is not None:
        if unit_sec <= 0:
            raise ValueError(f"--unit-sec must be positive, got {unit_sec}")
        changes["unit_sec"] = float(unit_sec)
    if label_column:
        changes["label_column"] = label_column
    if split_column and fold_column:
        raise ValueError("give --split-column or --fold-column, not both")
    if split_column:
        changes.update(split_column=split_column, fold_column=None, folds=None)
    if fold_column:
        changes.update(fold_column=fold_column, split_column=None, folds=None)
    return replace(task, **changes)
