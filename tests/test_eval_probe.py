"""The linear probe: identical to an EVAR-style reference written here, and agrees with scikit-learn."""

import copy
import random

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer, StandardScaler

from fusion_eval.probe import ProbeRandomness, linear_probe, load_accuracy_metric


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


def reference_probe(x, y, x_val, y_val, x_test, y_test, lr, epochs=200, patience=20):
    """The protocol as EVAR runs it, written independently: global seeding, one-hot targets from a
    LabelBinarizer, sklearn's train_test_split on the global numpy RNG, DataLoaders, deepcopy of the
    best weights. Call after seeding the global RNGs. Returns (test accuracy, best epoch)."""
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

    def accuracy(loader):
        model.eval()
        hits = []
        with torch.no_grad():
            for inputs, targets in loader:
                hits.append(model(inputs).sigmoid().numpy().argmax(-1) == targets.numpy().argmax(-1))
        return np.concatenate(hits).mean()

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
    return accuracy(torch.utils.data.DataLoader(test, batch_size=256)), best_epoch + 1


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
