"""The linear probe of EVAR (TorchMLPClassifier2 with no hidden layer), reproduced step for step.

StandardScaler fit on the training clips (before any validation hold-out), one nn.Linear, loss
-mean(one_hot * log_softmax) (cross-entropy / n_classes), Adam (betas 0.9/0.999, eps 1e-8, weight
decay 1e-8, coupled), batch min(200, n), at most 200 epochs, early stopping on validation accuracy
with patience 20 where ties (>=) move the best epoch later, the best weights restored for the test.

Random draws follow EVAR's after `seed_everything(seed)` exactly, from private generators instead of
the global ones: the numpy RandomState draws the validation split, the torch generator the weight
init and, per epoch, the seeds that DataLoader iterators take (one per iterator, plus one for the
shuffling sampler). So folds run in order on one ProbeRandomness continue the stream as EVAR does.

Embeddings may be larger than memory: they are read from the cache in blocks (scaler statistics,
finiteness checks) and mini-batches (training); the batches are the in-memory ones bit for bit
(scaler statistics fitted in several blocks agree with one fit to float64 rounding).
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..splits import class_complete_split
from .layer_weights import learned_weights, weighted

WEIGHT_DECAY = 1e-8
MAX_EPOCHS = 200
PATIENCE = 20
MAX_BATCH = 200
TEST_BATCH = 256
STATISTICS_BLOCK_BYTES = 64 * 2**20  # embeddings per block of the scaler fit and the finiteness checks
RESIDENT_BYTES = 512 * 2**20  # embeddings up to this size are scaled onto the device once, larger ones per batch
METRIC_PATH = Path(__file__).parent.parent / "metrics" / "accuracy.py"


class ProbeRandomness:
    """EVAR's random streams for one seed: numpy (validation split) and torch (init, shuffling)."""

    def __init__(self, seed):
        self.seed = seed
        self.numpy = np.random.RandomState(seed)
        self.torch = torch.Generator().manual_seed(seed)

    def loader_seed(self):
        """The int64 a DataLoader iterator or RandomSampler draws from the torch stream."""
        return int(torch.empty((), dtype=torch.int64).random_(generator=self.torch).item())

    def shuffle(self, n):
        """One epoch of a shuffling DataLoader: the iterator's base seed, then the sampler's permutation."""
        self.loader_seed()
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.loader_seed()))


@dataclass
class ProbeResult:
    """`weight` [C, D] and `bias` [C] are the best classifier with the StandardScaler folded in, so
    logits = x @ weight.T + bias on *unscaled* embeddings (what `--export-classifier` ships).
    `chosen`: the hyperparameters a probe picked on validation (MLP: its grid point, k-NN: k).
    `layer_weights`: the learned softmax weight of each layer (`--representation weighted-sum`), else None."""

    accuracy: float
    predictions: np.ndarray
    best_epoch: int
    epochs: int
    valid_accuracy: float
    weight: np.ndarray = None
    bias: np.ndarray = None
    chosen: dict = None
    layer_weights: list = None


def load_accuracy_metric():
    """The package's local `evaluate` accuracy module (no Hub access)."""
    import evaluate

    return evaluate.load(str(METRIC_PATH), keep_in_memory=True)


def linear_probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid=None, y_valid=None,
                 lr=3e-4, max_epochs=MAX_EPOCHS, patience=PATIENCE, metric=None, device="cpu", name="embeddings",
                 layers=1):
    """Train a linear classifier on embeddings and return its test accuracy.

    x_*: [n, D] float32 embeddings, either arrays (np.memmap too) or lazy row views such as
    `cache.CachedEmbeddings` / `cache.RowSelection`: anything with `len()`, `.shape` and `x[positions]`
    -> array [len(positions), D]. y_*: [n] int class indices in [0, num_classes). Without x_valid, a
    class-complete 10% of the (scaled) training clips is held out for early stopping. `layers` > 1: x is
    that many equal-width layers side by side, and the classifier reads their learned softmax-weighted
    sum (SUPERB's, `layer_weights.LayerWeights`, trained with it); the folded `weight` is still linear.

    Memory does not grow with n beyond O(n) integers: the StandardScaler is fitted in blocks of about
    `STATISTICS_BLOCK_BYTES` of embeddings; embeddings of up to `RESIDENT_BYTES` are read and scaled
    onto `device` once, larger ones are read, moved to `device` and scaled there one mini-batch at a
    time. Either way the numbers are the same. On CPU the probe runs on one thread: its small matrix
    products are slower when split (and far slower on a busy machine).
    Raises ValueError naming `name` when any embedding it would use is NaN or infinite.
    """
    with one_thread(device):
        return _linear_probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid, y_valid,
                             lr, max_epochs, patience, metric, device, name, layers)


@contextmanager
def one_thread(device):
    """Run a probe on one CPU thread (its small matrix products are slower split, far slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if torch.device(device).type == "cpu" else threads)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_scaler(x, name="embeddings", block_rows=None):
    """sklearn's StandardScaler fitted on x [n, D] block by block (`partial_fit`, float64 statistics),
    so only one block of rows is in memory. One block (n <= block_rows) is exactly `fit(x)`; more agree
    with it to float64 rounding. A feature with (near) zero variance gets scale 1, as sklearn gives it.
    Raises ValueError naming `name` when a row holds NaN or infinity (sklearn would skip NaN silently)."""
    scaler = StandardScaler()
    for start, block in _blocks(x, block_rows):
        scaler.partial_fit(_finite(block, start, name))
    return scaler


def _blocks(x, block_rows=None):
    """(first row, float32 rows) of x in blocks of `block_rows` (default: about STATISTICS_BLOCK_BYTES)."""
    block_rows = block_rows or max(1, STATISTICS_BLOCK_BYTES // (4 * max(1, x.shape[1])))
    for start in range(0, len(x), block_rows):
        yield start, np.asarray(x[np.arange(start, min(start + block_rows, len(x)))], np.float32)


def _finite(block, first, name):
    bad = ~np.isfinite(block).all(axis=1)
    if bad.any():
        rows = (np.flatnonzero(bad) + first).tolist()
        raise ValueError(f"{name}: {len(rows)} embedding(s) hold NaN or infinity (rows {rows[:5]}); the model "
                         "produced them or the cache is damaged: check the model, or delete its cache to re-extract")
    return block


def _linear_probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid, y_valid,
                  lr, max_epochs, patience, metric, device, name, layers):
    data = standardised_splits(x_train, y_train, x_test, y_test, randomness, x_valid, y_valid, device, name)
    scaler, train_pos, valid_pos = data.scaler, data.train_pos, data.valid_pos
    x_train, x_valid, x_test, y_train, y_valid, y_test = (data.x_train, data.x_valid, data.x_test, data.y_train,
                                                          data.y_valid, data.y_test)
    batch = min(MAX_BATCH, data.n_train)
    targets = F.one_hot(torch.as_tensor(y_train), num_classes).float().to(device)

    model = weighted(_linear(len(data.scaler.mean_) // layers, num_classes, randomness.torch), layers).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=WEIGHT_DECAY)
    best_acc, best_epoch, best_state, wait = 0.0, 0, None, 0
    for epoch in range(max_epochs):
        model.train()
        order = randomness.shuffle(len(train_pos))
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            inputs = x_train[train_pos[rows.numpy()]]
            optimizer.zero_grad()
            loss = -torch.mean(targets[rows.to(device)] * F.log_softmax(model(inputs), dim=-1))
            loss.backward()
            optimizer.step()
        randomness.loader_seed()  # the validation DataLoader's iterator
        acc = float((_predict(model, x_valid, valid_pos, batch) == y_valid).mean())
        if acc >= best_acc:
            best_acc, best_epoch, wait = acc, epoch, 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            if wait >= patience:
                break
            wait += 1
    model.load_state_dict(best_state)
    layer_weights = learned_weights(model)
    weight, bias = _folded(model, scaler, layer_weights)
    randomness.loader_seed()  # the test DataLoader's iterator
    predictions = _predict(model, x_test, np.arange(len(y_test)), TEST_BATCH)
    metric = metric or load_accuracy_metric()
    accuracy = metric.compute(predictions=predictions, references=y_test)["accuracy"]
    return ProbeResult(accuracy, predictions, best_epoch + 1, epoch + 1, best_acc, weight, bias,
                       layer_weights=layer_weights)


def _folded(model, scaler, layer_weights):
    """(weight [C, D], bias [C]) float64 of the trained model on unscaled x: (x - mean) / scale folded in,
    and a weighted sum of layers folded into one linear map (layer l's block of columns = w_l * weight)."""
    head = model[-1] if isinstance(model, nn.Sequential) else model
    weight = head.weight.detach().double().cpu()
    if layer_weights is not None:
        weight = torch.cat([w * weight for w in torch.tensor(layer_weights, dtype=torch.float64)], dim=1)
    weight = weight.numpy() / scaler.scale_
    return weight, head.bias.detach().double().cpu().numpy() - weight @ scaler.mean_


@dataclass
class Splits:
    """A probe's standardised data (every probe sees the same): `x_*` are `_ScaledRows` on the device,
    `x_train[train_pos]` trains, `x_valid[valid_pos]` validates (x_valid is x_train when the validation
    clips were carved from the training clips), `y_train` [len(train_pos)], `y_valid` [len(valid_pos)]."""

    scaler: StandardScaler
    x_train: object
    x_valid: object
    x_test: object
    train_pos: np.ndarray
    valid_pos: np.ndarray
    y_train: np.ndarray
    y_valid: np.ndarray
    y_test: np.ndarray
    n_train: int


def standardised_splits(x_train, y_train, x_test, y_test, randomness, x_valid=None, y_valid=None, device="cpu",
                        name="embeddings"):
    """EVAR's data preparation, shared by every probe: StandardScaler fit on all training clips, then
    (without x_valid) a class-complete 10% of them held out for validation from `randomness.numpy`;
    every embedding checked finite (ValueError naming `name`)."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError("x_train/y_train and x_test/y_test must have the same number of rows")
    n_train = len(x_train)
    scaler = fit_scaler(x_train, f"{name} (training clips)")
    train_pos = np.arange(len(x_train))
    if x_valid is None:
        train_pos, valid_pos = class_complete_split(y_train, randomness.numpy)
        y_train, y_valid = y_train[train_pos], y_train[valid_pos]
    else:
        valid_pos, y_valid = np.arange(len(x_valid)), np.asarray(y_valid)
        _check_finite(x_valid, f"{name} (validation clips)")
    _check_finite(x_test, f"{name} (test clips)")
    mean, scale = (torch.as_tensor(v.astype(np.float32), device=device) for v in (scaler.mean_, scaler.scale_))
    scaled_train, scaled_test = _ScaledRows(x_train, mean, scale), _ScaledRows(x_test, mean, scale)
    scaled_valid = scaled_train if x_valid is None else _ScaledRows(x_valid, mean, scale)
    return Splits(scaler, scaled_train, scaled_valid, scaled_test, train_pos, valid_pos, y_train, y_valid, y_test,
                  n_train)


def _check_finite(x, name):
    for start, block in _blocks(x):
        _finite(block, start, name)


class _ScaledRows:
    """Rows of x [n, D] standardised as sklearn's transform does in float32, (x - float32(mean)) /
    float32(scale) (the same IEEE operations on any device), as tensors on the device of `mean`:
    `rows[positions]` -> [len(positions), D]. All rows are read and scaled once when they take at most
    RESIDENT_BYTES, else each call reads just its rows."""

    def __init__(self, x, mean, scale):
        self.x, self.mean, self.scale = x, mean, scale
        self.resident = self.scaled(np.arange(len(x))) if len(x) * x.shape[1] * 4 <= RESIDENT_BYTES else None

    def scaled(self, positions):
        rows = torch.from_numpy(np.ascontiguousarray(self.x[positions], dtype=np.float32))
        return (rows.to(self.mean.device) - self.mean) / self.scale

    def __getitem__(self, positions):
        if self.resident is None:
            return self.scaled(positions)
        return self.resident[torch.as_tensor(positions, device=self.mean.device)]


def _linear(in_features, out_features, generator):
    """nn.Linear initialised as PyTorch does (kaiming-uniform a=sqrt(5), uniform bias), from `generator`."""
    layer = nn.utils.skip_init(nn.Linear, in_features, out_features)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(in_features)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


@torch.no_grad()
def _predict(model, x, positions, batch):
    """Class indices of rows `positions` of x (a _ScaledRows) as EVAR scores them: its targets are one-hot,
    so it takes argmax of the *sigmoid* of the logits (float32; saturated logits tie at 1.0, the first wins)."""
    model.eval()
    return torch.cat([model(x[positions[i:i + batch]]).sigmoid().argmax(-1)
                      for i in range(0, len(positions), batch)]).cpu().numpy()
