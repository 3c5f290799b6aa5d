"""The MLP and k-NN probes against scikit-learn on the same standardised data, and their errors."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from torch import nn

from fusion_eval.probes import knn, mlp
from fusion_eval.probes.linear import ProbeRandomness, fit_scaler, load_accuracy_metric, standardised_splits


@pytest.fixture(scope="module")
def metric():
    return load_accuracy_metric()


def blobs(seed, n=400, classes=4, dim=24, spread=1.6):
    """Gaussian classes whose means differ in a few dimensions: separable, not trivially."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim)) * (rng.random(dim) < 0.3)
    y = rng.integers(0, classes, n)
    x = (centres[y] * spread + rng.normal(0, 1, (n, dim)) + 5.0).astype(np.float32)
    return x, y


def test_knn_equals_sklearn_on_the_same_standardised_clips(metric):
    x, y = blobs(0)
    x_train, y_train, x_test, y_test = x[:300], y[:300], x[300:], y[300:]
    result = knn.knn_probe(x_train, y_train, x_test, y_test, 4, ProbeRandomness(42), metric=metric)
    # The same preparation (scaler on every training clip, the seed's 10% hold-out), then scikit-learn.
    data = standardised_splits(x_train, y_train, x_test, y_test, ProbeRandomness(42))
    scaled = lambda rows: rows.numpy()  # noqa: E731
    fit, valid = scaled(data.x_train[data.train_pos]), scaled(data.x_valid[data.valid_pos])
    test = scaled(data.x_test[np.arange(len(y_test))])
    reference = {k: KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(fit, data.y_train)
                 for k in knn.K_GRID}
    valid_accuracy = {k: float((ref.predict(valid) == data.y_valid).mean()) for k, ref in reference.items()}
    k = max(knn.K_GRID, key=lambda k: (valid_accuracy[k], -k))
    assert result.chosen == {"k": k} and result.valid_accuracy == valid_accuracy[k]
    np.testing.assert_array_equal(result.predictions, reference[k].predict(test))  # agreement: every clip
    assert result.accuracy == float((reference[k].predict(test) == y_test).mean())
    assert 0.6 < result.accuracy < 1.0, "the data is separable but not trivially"


def test_knn_refuses_fewer_training_clips_than_its_largest_k(metric):
    x, y = blobs(1, n=60)
    with pytest.raises(ValueError, match=r"task 'tiny'.*k grid .* needs at least 50 training clips.*drop `knn`"):
        knn.knn_probe(x[:40], y[:40], x[40:], y[40:], 4, ProbeRandomness(42), metric=metric, name="task 'tiny'")


def test_mlp_is_heareval_layout():
    model = mlp.build_mlp(24, 4, 2, "xavier_uniform", torch.Generator().manual_seed(0))
    kinds = [type(m) for m in model]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.Dropout, nn.ReLU] * 2 + [nn.Linear]
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [1024, 1024, 4]
    assert model[2].p == 0.1
    assert len(mlp.GRID) == 16 and {p["lr"] for p in mlp.GRID} == {3.2e-3, 1e-3, 3.2e-4, 1e-4}


def test_mlp_agrees_with_sklearn_mlpclassifier(metric):
    x, y = blobs(2, n=600)
    x_train, y_train, x_test, y_test = x[:450], y[:450], x[450:], y[450:]
    result = mlp.mlp_probe(x_train, y_train, x_test, y_test, 4, ProbeRandomness(42), metric=metric, grid_points=2)
    scaler = fit_scaler(x_train)
    reference = MLPClassifier(hidden_layer_sizes=(1024,) * result.chosen["hidden_layers"], alpha=0.0,
                              batch_size=1024, learning_rate_init=result.chosen["lr"], early_stopping=True,
                              validation_fraction=0.1, n_iter_no_change=20, max_iter=500, random_state=0)
    reference.fit(scaler.transform(x_train), y_train)
    expected = reference.score(scaler.transform(x_test), y_test)
    # Different nets (BatchNorm + dropout here, none there), same grid point: within 4 points of each other.
    assert abs(result.accuracy - expected) <= 0.04, (result.accuracy, expected)
    assert result.accuracy > 0.75 and result.chosen["grid_points"] and result.best_epoch % mlp.CHECK_EVERY == 0
    np.testing.assert_array_equal(result.predictions.shape, y_test.shape)
