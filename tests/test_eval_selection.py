"""`fusion-eval --select-fusion`: candidates judged on validation clips only, the batched criterion, the
choice written where the converters take it, and one result column per probe."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from eval_testing import synthetic_folder, tiny_cnn14_folder

from fusion_eval import selection
from fusion_eval.cli import main
from fusion_eval.report import render_markdown
from fusion_eval.splits import ProbeRun


def test_candidates_are_every_single_layer_pair_and_triple():
    assert selection.candidate_sets([3, 1, 2]) == [(1,), (2,), (3,), (1, 2), (1, 3), (2, 3)]
    assert len(selection.candidate_sets(range(1, 18), 3)) == 17 + 136 + 680
    with pytest.raises(ValueError, match="--max-layers must be 2 or 3"):
        selection.candidate_sets([1, 2], 4)


def test_batched_candidates_train_independently():
    """A candidate's score does not depend on which other candidates train beside it (same draws given)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    layers = [torch.from_numpy((rng.normal(0, 1, (240, 6)) + y[:, None] * scale).astype(np.float32))
              for scale in (0.0, 0.8, 0.3)]
    fit, valid = [x[:200] for x in layers], [x[200:] for x in layers]
    alone = selection.train_candidates(fit, y[:200], valid, y[200:], 3, [[1]], torch.Generator().manual_seed(1),
                                       1e-2, epochs=5, batch=50)
    ref = torch.nn.Linear(6, 3)
    gen = torch.Generator().manual_seed(1)
    weight = (2 * torch.rand(6, 1, 3, generator=gen) - 1) / 6 ** 0.5
    bias = (2 * torch.rand(1, 3, generator=gen) - 1) / 6 ** 0.5
    ref.weight.data, ref.bias.data = weight[:, 0].T.clone(), bias[0].clone()
    optimizer = torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=1e-8)
    targets = torch.nn.functional.one_hot(torch.as_tensor(y[:200]), 3).float()
    best = 0.0
    for _ in range(5):
        order = torch.randperm(200, generator=gen)
        for start in range(0, 200, 50):
            rows = order[start:start + 50]
            optimizer.zero_grad()
            (-(targets[rows] * torch.log_softmax(ref(fit[1][rows]), -1)).mean()).backward()
            optimizer.step()
        with torch.no_grad():
            best = max(best, float((ref(valid[1]).argmax(-1).numpy() == y[200:]).mean()))
    assert alone[0] == pytest.approx(best, abs=1e-6), "one candidate in the block layer is EVAR's linear probe"


def test_score_task_prefers_the_informative_pair_and_reads_no_test_row():
    rng = np.random.default_rng(1)
    n = 1500
    labels = np.array([str(v) for v in rng.integers(0, 3, n)])
    digits = labels.astype(int)
    xs = {1: rng.normal(0, 1, (n, 4)) + (digits == 1)[:, None] * 1.5,  # tells class 1 apart
          2: rng.normal(0, 1, (n, 4)),  # noise
          3: rng.normal(0, 1, (n, 4)) + (digits == 2)[:, None] * 1.5}  # tells class 2 apart
    test = np.arange(1250, n)
    read = []

    def layer_rows(layer, rows):
        read.append(rows)
        return xs[layer][rows].astype(np.float32)

    runs = [ProbeRun("split", np.arange(1250), None, test)]
    candidates = selection.candidate_sets([1, 2, 3])
    scores = selection.score_task("toy", runs, labels, layer_rows, [1, 2, 3], candidates, 42, 1e-2)
    mean, chosen, single = selection.choose({"toy": scores})
    assert chosen == [1, 3] and single in (1, 3)
    assert scores[(1, 3)] > max(scores[(1,)], scores[(3,)]) > scores[(2,)]
    assert not np.isin(np.concatenate(read), test).any(), "selection never reads a test clip"


def test_selection_without_enough_clips_for_validation_names_the_task():
    labels = np.array(["a"] * 8 + ["b", "c"])  # a 10% hold-out is 1 clip: it cannot hold 3 classes
    runs = [ProbeRun("fold 1", np.arange(10), None, np.arange(0))]
    with pytest.raises(ValueError, match=r"task 'tiny', fold 1: --select-fusion needs validation clips"):
        selection.score_task("tiny", runs, labels, lambda l, r: np.ones((len(r), 2), np.float32), [1], [(1,)], 42, 1e-3)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    synthetic_folder(root / "tones", clips_per_fold=36, folds=(1, 2, 3))  # 72 training clips: k-NN's k <= 50 fits
    tiny_cnn14_folder(root / "model")
    return root


def run_selection(root, data, out, extra=()):
    main(["--model", str(root / "model"), "--task", str(data), "--unit-sec", "1.0", "--split-column", "split",
          "--select-fusion", "--seeds", "42", "--cache-dir", str(root / "cache"), "--output", str(out),
          "--batch-size", "8", *extra])
    return json.loads((out / "results.json").read_text())


def test_scrambled_test_labels_leave_the_choice_unchanged(tones, tmp_path):
    first = run_selection(tones, tones / "tones", tmp_path / "a")
    scrambled = tmp_path / "scrambled"
    scrambled.mkdir()
    frame = pd.read_csv(tones / "tones" / "metadata.csv")
    frame["file_name"] = [str(tones / "tones" / f) for f in frame.file_name]
    test = frame.split == "test"
    frame.loc[test, "label"] = np.random.default_rng(0).permutation(frame.loc[test, "label"].to_numpy())
    frame.to_csv(scrambled / "metadata.csv", index=False)
    second = run_selection(tones, scrambled, tmp_path / "b")
    assert second["selection"]["mean"] == first["selection"]["mean"]
    assert second["selection"]["chosen"] == first["selection"]["chosen"]
    key = "layers_" + "_".join(map(str, first["selection"]["chosen"]))
    assert (list(first["tasks"].values())[0]["representations"][key]["mean"] !=
            list(second["tasks"].values())[0]["representations"][key]["mean"]), "the test score did change"


def test_choice_columns_per_probe_and_written_command(tones, tmp_path):
    results = run_selection(tones, tones / "tones", tmp_path / "out", ["--probe", "linear", "knn"])
    chosen = results["selection"]["chosen"]
    (task,) = results["tasks"].values()
    key = "layers_" + "_".join(map(str, chosen))
    best = f"layer_{results['selection']['best_layer']}"
    assert list(task["representations"])[:2] == [key, best] and "plain" in task["representations"]
    rep = task["representations"][key]
    assert rep["probe"] == "linear" and set(rep["probes"]) == {"knn"} and rep["probes"]["knn"]["seeds"]["42"]
    assert "k" in rep["probes"]["knn"]["seeds"]["42"]["runs"][0]["chosen"]
    out = tmp_path / "out"
    table = (out / "results.md").read_text()
    assert table == render_markdown(results)
    assert "(linear)" in table and "(k-NN)" in table
    knn = rep["probes"]["knn"]
    assert f"{knn['mean'] * 100:.1f}±{knn['std'] * 100:.1f}" in table.splitlines()[2]
    choice = json.loads((out / "selected_fusion.json").read_text())
    assert choice["layers"] == chosen and choice["config"] == {"fusion_layers": chosen}
    assert choice["command"].startswith("python -m modeling_fusion.convert cnn14 ")
    assert choice["command"].endswith("--layers " + " ".join(map(str, chosen)))
    assert choice["test_accuracy"]["k-NN"] == {next(iter(results["tasks"])): knn["mean"]}
    index = yaml.safe_load((out / "model_index.yaml").read_text())["model-index"][0]
    (entry,) = index["results"]  # one task: one entry, a metric per probe
    assert entry["task"]["name"] == "Linear evaluation (EVAR protocol) / k-NN probe (cosine, k on validation)"
    assert [m["name"] for m in entry["metrics"]] == ["Accuracy (%), mean of seeds 42",
                                                     "Accuracy (%, k-NN), mean of seeds 42"]
    assert [m["value"] for m in entry["metrics"]] == [round(rep["mean"] * 100, 2), round(knn["mean"] * 100, 2)]
    assert (out / "selection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_all_layers_is_every_cached_layer_side_by_side(tones, tmp_path):
    from fusion_eval.probes.linear import ProbeRandomness, linear_probe

    main(["--model", str(tones / "model"), "--task", str(tones / "tones"), "--unit-sec", "1.0", "--split-column",
          "split", "--representation", "all-layers", "--seeds", "42", "--cache-dir", str(tones / "cache"),
          "--output", str(tmp_path / "out"), "--batch-size", "8"])
    (task,) = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"].values()
    reps = task["representations"]
    assert "layer_1" not in reps, "single layers are cached for it, not probed"
    assert reps["all_layers"]["layers"] == list(range(1, 7))
    assert reps["all_layers"]["dim"] == sum(_layer_dims(tones))
    # Its accuracy is the linear probe of the concatenated cached layers (train: random view, test: start view).
    start, random = (_cache(tones / "cache", rule) for rule in ("start-*", "random42-*"))
    frame = pd.read_csv(tones / "tones" / "metadata.csv")
    classes = sorted(frame.label.unique())
    y = np.array([classes.index(label) for label in frame.label])
    concat = lambda cache: np.concatenate([cache.load(f"layer_{l}") for l in range(1, 7)], axis=1)  # noqa: E731
    train = np.flatnonzero(frame.split == "train")
    test = np.flatnonzero(frame.split == "test")
    probe = linear_probe(_rows(concat(random), random.rows, concat(start), start.rows, train), y[train],
                         _rows(concat(start), start.rows, None, None, test), y[test], 3, ProbeRandomness(42))
    assert reps["all_layers"]["seeds"]["42"]["accuracy"] == probe.accuracy


def _cache(cache_dir, pattern):
    from fusion_eval.cache import ViewCache

    (directory,) = [d for d in cache_dir.glob(f"*/tones-*/{pattern}") if d.is_dir()]
    chunks = [np.load(f)["rows"] for f in sorted(directory.glob("*.info.npz"))]
    return ViewCache(directory, np.concatenate(chunks), len(chunks[0]), {})


def _rows(primary, primary_rows, fallback, fallback_rows, rows):
    """Rows of the table from `primary` where cached there, else from `fallback` (clips short enough to be one view)."""
    where = {r: i for i, r in enumerate(primary_rows)}
    other = {} if fallback_rows is None else {r: i for i, r in enumerate(fallback_rows)}
    return np.stack([primary[where[r]] if r in where else fallback[other[r]] for r in rows])


def _layer_dims(root):
    cache = _cache(root / "cache", "start-*")
    return [cache.load(f"layer_{l}").shape[1] for l in range(1, 7)]
