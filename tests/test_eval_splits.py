"""Tasks, splits and folds: which rows train/validate/test each probe, and the class-complete hold-out."""

import math
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
from conftest import shared_path
from eval_testing import synthetic_folder
from sklearn.model_selection import train_test_split

from fusion_eval.datasource import load_table
from fusion_eval.splits import class_complete_split, probe_runs
from fusion_eval.tasks import TASKS, Task, resolve_task


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tones"
    synthetic_folder(path, clips_per_fold=6, folds=(1, 2, 3))
    return path


def test_leave_one_fold_out_over_chosen_folds(folder):
    task = resolve_task(str(folder), unit_sec=1.0, fold_column="fold")
    table = load_table(task, folder.parent, 16000)
    task = replace(task, folds=(1, 3))
    runs = probe_runs(task, table)
    assert [run.name for run in runs] == ["fold 1", "fold 3"]
    for run, (held, other) in zip(runs, ((1, 3), (3, 1))):
        assert set(table.fold[run.test]) == {held} and len(run.test) == 6
        assert set(table.fold[run.train]) == {other} and len(run.train) == 6, "fold 2 is not part of the task"
        assert run.valid is None


def test_split_column_and_missing_valid(folder):
    table = load_table(resolve_task(str(folder), unit_sec=1.0), folder.parent, 16000)
    assert table.fold is None, "a folder with a split column is split by it unless --fold-column is given"
    (run,) = probe_runs(resolve_task(str(folder), unit_sec=1.0), table)
    np.testing.assert_array_equal(run.train, np.arange(12))
    np.testing.assert_array_equal(run.test, np.arange(12, 18))
    assert run.valid is None


def test_valid_split_values_are_normalised(folder, tmp_path):
    import pandas as pd

    frame = pd.read_csv(folder / "metadata.csv")
    frame["split"] = ["train", "validation", "TEST"] * 6
    frame["file_name"] = [str(folder / name) for name in frame.file_name]
    (tmp_path / "t").mkdir()
    frame.to_csv(tmp_path / "t" / "metadata.csv", index=False)
    task = resolve_task(str(tmp_path / "t"), unit_sec=1.0)
    (run,) = probe_runs(task, load_table(task, tmp_path, 16000))
    assert (len(run.train), len(run.valid), len(run.test)) == (6, 6, 6)
    frame["split"] = ["train", "dev", "test"] * 6
    frame.to_csv(tmp_path / "t" / "metadata.csv", index=False)
    with pytest.raises(ValueError, match=r"values \['dev'\]; use train/valid/test"):
        load_table(task, tmp_path, 16000)


def test_bad_columns_name_the_option(folder):
    with pytest.raises(ValueError, match="no column 'speaker' \\(set by --label-column\\)"):
        load_table(resolve_task(str(folder), unit_sec=1.0, label_column="speaker"), folder.parent, 16000)
    with pytest.raises(ValueError, match="--unit-sec is required"):
        resolve_task(str(folder))
    with pytest.raises(ValueError, match="unknown task 'esc-50'"):
        resolve_task("esc-50")
    task = replace(TASKS["fsdd"], folds=(1, 7))
    table = load_table(resolve_task(str(folder), unit_sec=1.0, fold_column="fold"), folder.parent, 16000)
    with pytest.raises(ValueError, match=r"folds \[7\] have no rows"):
        probe_runs(task, table)


def test_class_complete_split_redraws_until_every_class_is_held_out():
    labels = np.array([0] * 36 + [1] * 2 + [2] * 2)  # 40 clips, 4 held out
    rng = np.random.RandomState(0)
    train, valid = class_complete_split(labels, rng)
    assert len(valid) == math.ceil(0.1 * 40) and len(train) == 36
    assert set(labels[valid]) == {0, 1, 2}
    assert sorted(np.concatenate([train, valid])) == list(range(40))
    replay, draws = np.random.RandomState(0), 0
    while True:  # the same stream, drawn by hand: the first complete draw is the one returned
        draws += 1
        expected_train, expected_valid = train_test_split(np.arange(40), test_size=0.1, random_state=replay)
        if len(set(labels[expected_valid])) == 3:
            break
    assert draws > 1, "the first draw should have missed a class, so that the redraw is exercised"
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(train, expected_train)


def test_paper_learning_rates():
    assert TASKS["nsynth"].learning_rate("cnn14", "fusion") == 1e-5
    assert TASKS["nsynth"].learning_rate("cnn14", "plain") == 1e-5
    assert TASKS["surge"].learning_rate("cnn14", "layer") == 3e-5
    assert TASKS["surge"].learning_rate("cnn14", "plain") == 3e-4
    assert TASKS["surge"].learning_rate("ast", "fusion") == 1e-4
    assert TASKS["esc50"].learning_rate("vggish", "plain") == 3e-3
    assert TASKS["esc50"].learning_rate("vggish", "fusion") == 3e-4
    assert TASKS["vc1"].learning_rate("vggish", "layer") == 5e-4
    assert [t.name for t in TASKS.values()][:9] == ["esc50", "us8k", "spcv2", "vc1", "voxforge", "cremad", "gtzan",
                                                    "nsynth", "surge"]


@pytest.mark.parametrize("name, runs, train, test", [
    ("fsdd", ["split"], 2700, 300),
    ("fsdd-speaker", ["split"], 2700, 300),
    ("spcv2-test-folds", [f"fold {k}" for k in range(1, 6)], None, None),
    ("us8k-3folds", ["fold 1", "fold 2", "fold 10"], None, None),
])
def test_shared_datasets_resolve(name, runs, train, test):
    data = shared_path("data")
    task = resolve_task(name)
    table = load_table(task, data, 16000)
    got = probe_runs(task, table)
    assert [run.name for run in got] == runs
    for run in got:
        assert len(run.train) + len(run.test) == len(table)
        assert not set(run.train) & set(run.test)
    if train is not None:
        assert (len(got[0].train), len(got[0].test)) == (train, test)
    expected_classes = {"fsdd": 10, "fsdd-speaker": 6, "spcv2-test-folds": 12, "us8k-3folds": 10}[name]
    assert len(set(table.labels)) == expected_classes


def test_hub_source_concatenates_splits(folder, tmp_path):
    """The Hub path, on a local dataset directory: every split is loaded and the folds are kept."""
    task = resolve_task("esc50")
    task = replace(task, hub_id=str(folder), hub_label_column=None, folder="absent")
    table = load_table(task, tmp_path, 16000)
    assert table.source == str(folder) and len(table) == 18
    np.testing.assert_array_equal(np.sort(table.fold), np.repeat([1, 2, 3], 6))
    assert sorted(set(table.labels)) == ["high", "low", "mid"]
    assert table.sampling_rate == 16000 and table.wave(0).dtype == np.float32


def test_local_source_is_recorded_as_given(folder, monkeypatch):
    """A registry task under a relative --data-dir stays relative in results.json (the reports name
    ../shared/data/fsdd, not this machine's path); a custom folder task (`--task DIR`) works from any cwd."""
    monkeypatch.chdir(folder.parent.parent)
    registry_like = Task("tones", "tones", 1.0, folder=folder.name, fold_column="fold")
    table = load_table(registry_like, folder.parent.name, 16000)
    assert table.source == str(Path(folder.parent.name, folder.name)) and len(table) == 18
    monkeypatch.chdir(folder)
    custom = load_table(resolve_task(".", unit_sec=1.0, fold_column="fold"), "data", 16000)
    assert Path(custom.source) == folder.resolve() and len(custom) == 18
