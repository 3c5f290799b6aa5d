"""The linear probe: identical to an EVAR-style reference written here, and agrees with scikit-learn."""

import copy
import random

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from fusion_eval.probes import linear as probe_module
from fusion_eval.cache import RowSelection, ViewCache
from fusion_eval.probes.linear import ProbeRandomness, fit_scaler, linear_probe, load_accuracy_metric


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The probe runs on one CPU thread; the reference must too, to give bit-identical products."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def metric():
    return load_accuracy_metric()


def blobs(n, dim, classes, spread, seed):
    """Gaussian clusters around random centres: [n, dim] float32, labels [n]."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 3
    labels = rng.integers(0, classes, n)
    return (centres[labels] + rng.standard_normal((n, dim)) * spread).astype(np.float32), labels


def reference_probe(x, y, x_val, y_val, x_test, y_test, lr, epochs=200, patience=20, details=False):
    """The protocol as EVAR runs it, written independently: global seeding, one-hot targets from a
    LabelBinarizer, sklearn's train_test_split on the global numpy RNG, DataLoaders, deepcopy of the
    best weights, all in memory. Call after seeding the global RNGs. Returns (test accuracy, best epoch),
    with `details` also the test predictions and the best layer's weight [C, D] and bias [C] with the
    scaler folded in (as ProbeResult gives them)."""
    binarizer = LabelBinarizer().fit(y)
    y = binarizer.transform(y)
    batch = min(200, len(x))
    scaler = StandardScaler().fit(x)
    x = scaler.transform(x)
    if x_val is None:
        for _ in range(100):
            x_trn, x_v, y_trn, y_v = train_test_split(x, y, test_size=0.1)
            if np.all((y_v.sum(0) > 0) == (y.sum(0) > 0)):
                break
    else:
        x_trn, x_v, y_trn, y_v = x, scaler.transform(x_val), y, binarizer.transform(y_val)
    data = [torch.Tensor(a) for a in (x_trn, y_trn, x_v, y_v)]
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data[:2]), batch_size=batch, shuffle=True)
    valid = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data[2:]), batch_size=batch)
    model = torch.nn.Linear(x.shape[1], y.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-8)

    def predict(loader):
        model.eval()
        predicted, truth = [], []
        with torch.no_grad():
            for inputs, targets in loader:
                predicted.append(model(inputs).sigmoid().numpy().argmax(-1))
                truth.append(targets.numpy().argmax(-1))
        return np.concatenate(predicted), np.concatenate(truth)

    def accuracy(loader):
        return np.mean(np.equal(*predict(loader)))

    best, best_epoch, best_weights, wait = 0.0, None, None, 0
    for epoch in range(epochs):
        model.train()
        for inputs, targets in train:
            optimizer.zero_grad()
            loss = -torch.mean(targets * torch.log_softmax(model(inputs), -1))
            loss.backward()
            optimizer.step()
        score = accuracy(valid)
        if score >= best:
            best, best_epoch, best_weights, wait = score, epoch, copy.deepcopy(model.state_dict()), 1
        elif wait >= patience:
            break
        else:
            wait += 1
    model.load_state_dict(best_weights)
    test = torch.utils.data.TensorDataset(torch.Tensor(scaler.transform(x_test)), torch.Tensor(binarizer.transform(y_test)))
    predictions, truth = predict(torch.utils.data.DataLoader(test, batch_size=256))
    if not details:
        return np.mean(predictions == truth), best_epoch + 1
    weight = best_weights["weight"].double().numpy() / scaler.scale_
    bias = best_weights["bias"].double().numpy() - weight @ scaler.mean_
    return np.mean(predictions == truth), best_epoch + 1, predictions, weight, bias


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@pytest.mark.parametrize("seed", [42, 43])
def test_matches_reference_over_folds_with_held_out_validation(seed, metric):
    """Three folds in a row on one seed, validation drawn from training: the random streams carry over."""
    x, y = blobs(420, 24, 6, spread=4.0, seed=0)
    folds = np.arange(len(x)) % 3
    seed_all(seed)
    expected = [reference_probe(x[folds != k], y[folds != k], None, None, x[folds == k], y[folds == k], 3e-3)
                for k in range(3)]
    randomness = ProbeRandomness(seed)
    got = [linear_probe(x[folds != k], y[folds != k], x[folds == k], y[folds == k], 6, randomness, lr=3e-3,
                        metric=metric) for k in range(3)]
    assert [(r.accuracy, r.best_epoch) for r in got] == expected
    assert 0.3 < np.mean([r.accuracy for r in got]) < 0.99, "toy problem must be neither trivial nor hopeless"


def test_matches_reference_with_valid_split_and_early_stop(metric):
    x, y = blobs(700, 16, 5, spread=5.0, seed=1)
    train, valid, test = slice(0, 400), slice(400, 500), slice(500, 700)
    seed_all(44)
    expected = reference_probe(x[train], y[train], x[valid], y[valid], x[test], y[test], 1e-2, patience=5)
    result = linear_probe(x[train], y[train], x[test], y[test], 5, ProbeRandomness(44), x[valid], y[valid],
                          lr=1e-2, patience=5, metric=metric)
    assert (result.accuracy, result.best_epoch) == expected
    assert result.epochs < 200, "patience 5 at lr 1e-2 should stop early on this noisy problem"
    assert result.epochs == result.best_epoch + 5, "EVAR stops on the 5th epoch without improvement"


def test_seed_changes_the_outcome(metric):
    x, y = blobs(300, 24, 6, spread=4.0, seed=2)
    runs = [linear_probe(x[:200], y[:200], x[200:], y[200:], 6, ProbeRandomness(s), metric=metric) for s in (42, 43)]
    assert not np.array_equal(runs[0].predictions, runs[1].predictions) or runs[0].best_epoch != runs[1].best_epoch


def test_agrees_with_logistic_regression_on_separable_problem(metric):
    x, y = blobs(900, 32, 8, spread=1.5, seed=3)
    train, test = slice(0, 600), slice(600, None)
    ours = linear_probe(x[train], y[train], x[test], y[test], 8, ProbeRandomness(42), lr=1e-3, metric=metric)
    scaler = StandardScaler().fit(x[train])
    sklearn = LogisticRegression(max_iter=2000).fit(scaler.transform(x[train]), y[train])
    theirs = sklearn.predict(scaler.transform(x[test]))
    assert ours.accuracy == pytest.approx((theirs == y[test]).mean(), abs=0.01)
    assert (ours.predictions == theirs).mean() >= 0.98
    assert ours.accuracy > 0.95


def test_validation_split_needs_every_class(metric):
    """20 clips hold out 2, which can never cover 4 classes: EVAR gives up after 100 draws, so do we."""
    x, y = blobs(20, 4, 1, spread=1.0, seed=4)
    y[:3] = [1, 2, 3]
    with pytest.raises(ValueError, match="validation split holding all 4 classes in 100 attempts"):
        linear_probe(x, y, x, y, 4, ProbeRandomness(42), metric=metric)


# Streaming from the on-disk cache: the same numbers as the in-memory EVAR reference, bounded memory.


def to_cache(directory, x, chunk_size, key="fusion"):
    """x [n, D] written as a ViewCache's chunk files (the extraction's format); returns the lazy view."""
    cache = ViewCache(directory, np.arange(len(x)), chunk_size, {})
    cache.create()
    for chunk in range(cache.num_chunks):
        rows = cache.chunk_rows(chunk)
        cache.write(chunk, rows, np.ones(len(rows), np.int64), np.ones(len(rows), bool), {key: x[rows]})
    return cache.embeddings(key)


def test_cached_embeddings_read_rows_in_any_order(tmp_path):
    x = np.random.default_rng(5).standard_normal((101, 7)).astype(np.float32)
    view = to_cache(tmp_path, x, chunk_size=10)
    view.MAX_OPEN_FILES = 3  # every chunk file gets closed and reopened along the way
    positions = np.r_[np.arange(101), np.arange(100, -1, -1), [3, 3, 57, 9, 10, 11, 12, 100, 0]]
    np.testing.assert_array_equal(view[positions], x[positions])
    assert view.shape == (101, 7) and len(view.files) <= 3
    np.testing.assert_array_equal(np.load(tmp_path / "00003.fusion.npy", mmap_mode="r"), x[30:40])
    with pytest.raises(IndexError):
        view[[101]]
    np.save(tmp_path / "00004.fusion.npy", x[:3])  # a damaged chunk: read header -> truncated, new view -> wrong shape
    with pytest.raises(ValueError, match=r"00004.fusion.npy is truncated; delete it to re-extract"):
        view[[45]]
    with pytest.raises(ValueError, match=r"00004.fusion.npy holds float32 \(3, 7\), expected float32 \[10, 7\]"):
        ViewCache(tmp_path, np.arange(101), 10, {}).embeddings("fusion")[[45]]


@pytest.mark.parametrize("block_rows", [1, 64, None])
def test_chunked_standardisation_equals_sklearn(block_rows):
    """Block-wise partial_fit vs one fit: float64 statistics agree to rounding (rtol 1e-12; the sums
    only change order), their float32 casts (what scales the batches) are equal, and one block is
    `fit` exactly. A constant and a near-constant feature get scale 1, as sklearn gives them."""
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((500, 6)) * [1, 1e3, 1e-3, 5, 0, 1e-12] + [0, -7, 3, 1, 2.5, 5]).astype(np.float32)
    ours, theirs = fit_scaler(x, block_rows=block_rows), StandardScaler().fit(x)
    for name in ("mean_", "var_", "scale_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-12, atol=0)
        np.testing.assert_array_equal(getattr(ours, name).astype(np.float32), getattr(theirs, name).astype(np.float32))
    if block_rows is None:
        np.testing.assert_array_equal(ours.var_, theirs.var_)
    assert ours.scale_[4] == ours.scale_[5] == 1.0
    assert np.isfinite(ours.transform(x)).all()


@pytest.mark.parametrize("streamed", [False, True])
def test_probe_from_cache_equals_in_memory_reference(tmp_path, metric, monkeypatch, streamed):
    """Train rows from two caches (as fusion-eval mixes its random and start views), test rows from a
    third: the same accuracy, best epoch, predictions and (bit for bit) weights as the in-memory EVAR
    reference, read into memory at once (small data) or `streamed`: every mini-batch read from the
    chunk files and the scaler fitted in blocks of 50 rows (the float32 batches and so the training stay
    bit-identical; only the float64 fold of the scaler into the weights moves, by rounding)."""
    if streamed:
        monkeypatch.setattr(probe_module, "STATISTICS_BLOCK_BYTES", 24 * 4 * 50)
        monkeypatch.setattr(probe_module, "RESIDENT_BYTES", 0)
    x, y = blobs(420, 24, 6, spread=4.0, seed=7)
    train, test = np.arange(300), np.arange(300, 420)
    from_start = np.zeros(300, np.int64)
    from_start[::7] = 1
    random_view = to_cache(tmp_path / "random", x[train][from_start == 0], chunk_size=16)
    start_view = to_cache(tmp_path / "start", np.concatenate([x[train][from_start == 1], x[test]]), chunk_size=23)
    position = np.where(from_start == 0, np.cumsum(from_start == 0) - 1, np.cumsum(from_start == 1) - 1)
    x_train = RowSelection([random_view, start_view], from_start, position)
    x_test = RowSelection([start_view], np.zeros(120, np.int64), np.arange(120) + from_start.sum())
    np.testing.assert_array_equal(x_train[np.arange(300)], x[train])

    seed_all(43)
    accuracy, best_epoch, predictions, weight, bias = reference_probe(x[train], y[train], None, None, x[test], y[test],
                                                                      3e-3, details=True)
    got = linear_probe(x_train, y[train], x_test, y[test], 6, ProbeRandomness(43), lr=3e-3, metric=metric)
    assert (got.accuracy, got.best_epoch) == (accuracy, best_epoch)
    np.testing.assert_array_equal(got.predictions, predictions)
    # The trained float32 layer is the same; folding it with block-wise float64 statistics moves the
    # folded float64 weights by float64 rounding only (measured 9e-16 relative), one block not at all.
    tolerance = dict(rtol=1e-13, atol=0) if streamed else dict(rtol=0, atol=0)
    np.testing.assert_allclose(got.weight, weight, **tolerance)
    np.testing.assert_allclose(got.bias, bias, **tolerance)
    assert 0.3 < accuracy < 0.99, "toy problem must be neither trivial nor hopeless"


def test_probe_reads_memory_mapped_arrays(tmp_path, metric):
    """np.load(mmap_mode="r") arrays go straight in: same result as the arrays in memory."""
    x, y = blobs(300, 16, 5, spread=5.0, seed=8)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    args = (y[:200], mapped[200:], y[200:], 5, ProbeRandomness(42))
    got = linear_probe(mapped[:200], *args, lr=1e-2, patience=5, metric=metric)
    expected = linear_probe(x[:200], y[:200], x[200:], y[200:], 5, ProbeRandomness(42), lr=1e-2, patience=5,
                            metric=metric)
    np.testing.assert_array_equal(got.predictions, expected.predictions)
    np.testing.assert_array_equal(got.weight, expected.weight)


def test_constant_features_stay_finite(metric):
    """Embedding dimensions that never vary in training (dead units: 0, or a constant) get scale 1 as
    sklearn gives them, never 0/0: finite weights that still predict like the probe (the folded layer on
    raw embeddings), and a test clip where that unit does vary stays finite too."""
    x, y = blobs(300, 8, 4, spread=1.0, seed=9)
    x[:, 2], x[:, 5] = 3.0, 0.0
    x[250, 5] = 1e3
    result = linear_probe(x[:200], y[:200], x[200:], y[200:], 4, ProbeRandomness(42), lr=1e-2, metric=metric)
    assert np.isfinite(result.weight).all() and np.isfinite(result.bias).all()
    assert result.accuracy > 0.8
    logits = x[200:].astype(np.float64) @ result.weight.T + result.bias
    assert np.isfinite(logits).all() and (logits.argmax(-1) == result.predictions).mean() >= 0.98


@pytest.mark.parametrize("role, value", [("training", np.nan), ("validation", -np.inf), ("test", np.inf)])
def test_non_finite_embeddings_name_the_task(tmp_path, metric, role, value):
    """A NaN or infinite embedding in the cache stops the probe before training, naming the task,
    representation, role and row (sklearn's scaler would skip a NaN, and training would then diverge)."""
    x, y = blobs(90, 4, 2, spread=1.0, seed=10)
    rows = {"training": np.arange(30), "validation": np.arange(30, 60), "test": np.arange(60, 90)}
    x[rows[role][5], 1] = value
    view = to_cache(tmp_path, x, chunk_size=8)
    select = {k: RowSelection([view], np.zeros(30, np.int64), v) for k, v in rows.items()}
    with pytest.raises(ValueError, match=rf"task 'fsdd', representation 'fusion_3_6', split \({role} clips\): "
                                         r"1 embedding\(s\) hold NaN or infinity \(rows \[5\]\)"):
        linear_probe(select["training"], y[:30], select["test"], y[60:], 2, ProbeRandomness(42), select["validation"],
                     y[30:60], metric=metric, name="task 'fsdd', representation 'fusion_3_6', split")
