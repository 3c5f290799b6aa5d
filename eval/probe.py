"""The linear probe of EVAR (TorchMLPClassifier2 with no hidden layer), reproduced step for step.

StandardScaler fit on the training clips (before any validation hold-out), one nn.Linear, loss
-mean(one_hot * log_softmax) (cross-entropy / n_classes), Adam (betas 0.9/0.999, eps 1e-8, weight
decay 1e-8, coupled), batch min(200, n), at most 200 epochs, early stopping on validation accuracy
with patience 20 where ties (>=) move the best epoch later, the best weights restored for the test.

Random draws follow EVAR's after `seed_everything(seed)` exactly, from private generators instead of
the global ones: the numpy RandomState draws the validation split, the torch generator the weight
init and, per epoch, the seeds that DataLoader iterators take (one per iterator, plus one for the
shuffling sampler). So folds run in order on one ProbeRandomness continue the stream as EVAR does.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler
from torch import nn

from .splits import class_complete_split

WEIGHT_DECAY = 1e-8
MAX_EPOCHS = 200
PATIENCE = 20
MAX_BATCH = 200
TEST_BATCH = 256
METRIC_PATH = Path(__file__).parent / "metrics" / "accuracy.py"


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
    logits = x @ weight.T + bias on *unscaled* embeddings (what `--export-classifier` ships)."""

    accuracy: float
    predictions: np.ndarray
    best_epoch: int
    epochs: int
    valid_accuracy: float
    weight: np.ndarray = None
    bias: np.ndarray = None


def load_accuracy_metric():
    """The package's local `evaluate` accuracy module (no Hub access)."""
    import evaluate

    return evaluate.load(str(METRIC_PATH), keep_in_memory=True)


def linear_probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid=None, y_valid=None,
                 lr=3e-4, max_epochs=MAX_EPOCHS, patience=PATIENCE, metric=None, device="cpu"):
    """Train a linear classifier on embeddings and return its test accuracy.

    x_*: [n, D] float arrays; y_*: [n] int class indices in [0, num_classes). Without x_valid, a
    class-complete 10% of the (scaled) training clips is held out for early stopping. On CPU it runs
    on one thread: its small matrix products are slower when split (and far slower on a busy machine).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if torch.device(device).type == "cpu" else threads)
    try:
        return _linear_probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid, y_valid,
                             lr, max_epochs, patience, metric, device)
    finally:
        torch.set_num_threads(threads)


def _linear_probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid, y_valid,
                  lr, max_epochs, patience, metric, device):
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError("x_train/y_train and x_test/y_test must have the same number of rows")
    batch = min(MAX_BATCH, len(x_train))
    scaler = StandardScaler().fit(x_train)
    x_train = scaler.transform(x_train)
    if x_valid is None:
        train_pos, valid_pos = class_complete_split(y_train, randomness.numpy)
        x_train, x_valid, y_train, y_valid = x_train[train_pos], x_train[valid_pos], y_train[train_pos], y_train[valid_pos]
    else:
        x_valid, y_valid = scaler.transform(x_valid), np.asarray(y_valid)
    x_train, x_valid = (torch.as_tensor(x, dtype=torch.float32, device=device) for x in (x_train, x_valid))
    targets = F.one_hot(torch.as_tensor(y_train), num_classes).float().to(device)

    model = _linear(x_train.shape[1], num_classes, randomness.torch).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=WEIGHT_DECAY)
    best_acc, best_epoch, best_state, wait = 0.0, 0, None, 0
    for epoch in range(max_epochs):
        model.train()
        order = randomness.shuffle(len(x_train))
        for start in range(0, len(x_train), batch):
            rows = order[start:start + batch].to(device)
            optimizer.zero_grad()
            loss = -torch.mean(targets[rows] * F.log_softmax(model(x_train[rows]), dim=-1))
            loss.backward()
            optimizer.step()
        randomness.loader_seed()  # the validation DataLoader's iterator
        acc = float((_predict(model, x_valid, batch) == y_valid).mean())
        if acc >= best_acc:
            best_acc, best_epoch, wait = acc, epoch, 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            if wait >= patience:
                break
            wait += 1
    model.load_state_dict(best_state)
    weight = best_state["weight"].double().cpu().numpy() / scaler.scale_  # fold (x - mean) / scale into the layer
    bias = best_state["bias"].double().cpu().numpy() - weight @ scaler.mean_
    randomness.loader_seed()  # the test DataLoader's iterator
    x_test = torch.as_tensor(scaler.transform(x_test), dtype=torch.float32, device=device)
    predictions = _predict(model, x_test, TEST_BATCH)
    metric = metric or load_accuracy_metric()
    accuracy = metric.compute(predictions=predictions, references=y_test)["accuracy"]
    return ProbeResult(accuracy, predictions, best_epoch + 1, epoch + 1, best_acc, weight, bias)


def _linear(in_features, out_features, generator):
    """nn.Linear initialised as PyTorch does (kaiming-uniform a=sqrt(5), uniform bias), from `generator`."""
    layer = nn.utils.skip_init(nn.Linear, in_features, out_features)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(in_features)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


@torch.no_grad()
def _predict(model, x, batch):
    """Class indices as EVAR scores them: its targets are one-hot, so it takes argmax of the *sigmoid*
    of the logits (float32; saturated logits tie at 1.0 and the first class wins)."""
    model.eval()
    return torch.cat([model(x[i:i + batch]).sigmoid().argmax(-1) for i in range(0, len(x), batch)]).cpu().numpy()
