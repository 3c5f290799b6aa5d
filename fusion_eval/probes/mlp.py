"""HEAR's downstream MLP probe: a small hyperparameter grid, each point trained with early stopping
on validation accuracy, the best point's best checkpoint scored on the test clips.

The grid and schedule are hear-eval-kit's `PARAM_GRID` (heareval/predictions/task_predictions.py,
hearbenchmark/hear-eval-kit @ da4f19f): hidden_layers 1 or 2, hidden_dim 1024, dropout 0.1, lr 3.2e-3 /
1e-3 / 3.2e-4 / 1e-4, xavier_uniform or xavier_normal weights (gain 1 for the first layer, ReLU's
after), BatchNorm1d after each hidden Linear then Dropout then ReLU (norm_after_activation False), Adam,
batch 1024, cross-entropy, validation every 3 epochs, patience 20 checks, at most 500 epochs, best
checkpoint restored. Like hear-eval-kit's runner, a random subset of the grid is tried: `GRID_POINTS`
= 8 of its 16 points (the runner's `--grid-points` default, heareval/predictions/runner.py), drawn per seed. Differences: the input is standardised with the training clips'
StandardScaler and validated on the same clips as the linear probe (EVAR's data preparation, shared by
every probe here; HEAR's embedding_norm is the identity and it uses the task's own valid split), and
random draws come from the seed's `ProbeRandomness` torch stream (the numpy stream, which draws the
validation clips, is left to the linear probe's sequence).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layer_weights import learned_weights, weighted
from .linear import ProbeResult, load_accuracy_metric, standardised_splits

GRID = [{"hidden_layers": layers, "lr": lr, "initialization": init}
        for layers in (1, 2) for lr in (3.2e-3, 1e-3, 3.2e-4, 1e-4) for init in ("xavier_uniform", "xavier_normal")]
GRID_POINTS = 8
HIDDEN_DIM = 1024
DROPOUT = 0.1
BATCH = 1024
MAX_EPOCHS = 500
CHECK_EVERY = 3
PATIENCE = 20  # validation checks without a strictly better accuracy


def mlp_probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid=None, y_valid=None,
              lr=None, metric=None, device="cpu", name="embeddings", grid_points=GRID_POINTS, layers=1):
    """Test accuracy of HEAR's MLP; x_*/y_* and `layers` (a learned weighted sum of that many layers in
    front) as `linear.linear_probe` takes them (`lr` is unused: the grid has its own). Returns ProbeResult
    with `chosen` = the grid point (and its best epoch), `valid_accuracy` its best validation accuracy.
    Raises ValueError naming `name` when fewer than 2 training clips remain after the validation hold-out
    (BatchNorm needs 2). Unlike the linear probe it uses every CPU thread torch has: its 1024-wide layers
    train 1.8x faster on 2 threads than on 1 (N=4000, D=2048 on this project's 2-core machine)."""
    data = standardised_splits(x_train, y_train, x_test, y_test, randomness, x_valid, y_valid, device, name)
    if len(data.train_pos) < 2:
        raise ValueError(f"{name}: the MLP probe needs at least 2 training clips after the validation hold-out "
                         f"(BatchNorm), got {len(data.train_pos)}; drop `mlp` from --probe for this task")
    x_fit = data.x_train[data.train_pos]
    x_valid = data.x_valid[data.valid_pos]
    y_fit = torch.as_tensor(data.y_train, device=x_fit.device)
    points = torch.randperm(len(GRID), generator=randomness.torch)[:grid_points].tolist()
    trials = [_train(GRID[p], x_fit, y_fit, x_valid, data.y_valid, num_classes, randomness, layers)
              for p in points]
    best = max(range(len(trials)), key=lambda i: (trials[i][1], -i))  # ties: the first drawn
    model, valid_accuracy, epoch = trials[best]
    predictions = _predict(model, data.x_test[np.arange(len(data.y_test))])
    metric = metric or load_accuracy_metric()
    accuracy = metric.compute(predictions=predictions, references=data.y_test)["accuracy"]
    chosen = {**GRID[points[best]], "hidden_dim": HIDDEN_DIM, "dropout": DROPOUT, "grid_points": points}
    return ProbeResult(accuracy, predictions, epoch, None, valid_accuracy, chosen=chosen,
                       layer_weights=learned_weights(model))


def build_mlp(in_features, num_classes, hidden_layers, initialization, generator):
    """HEAR's FullyConnectedPrediction for one-label tasks, weights drawn from `generator`."""
    init = {"xavier_uniform": nn.init.xavier_uniform_, "xavier_normal": nn.init.xavier_normal_}[initialization]
    modules, width, gain = [], in_features, nn.init.calculate_gain("linear")
    for _ in range(hidden_layers):
        modules += [_layer(width, HIDDEN_DIM, init, gain, generator), nn.BatchNorm1d(HIDDEN_DIM), nn.Dropout(DROPOUT),
                    nn.ReLU()]
        width, gain = HIDDEN_DIM, nn.init.calculate_gain("relu")
    modules.append(_layer(width, num_classes, init, gain, generator))
    return nn.Sequential(*modules)


def _layer(fan_in, fan_out, init, gain, generator):
    layer = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
    init(layer.weight, gain=gain, generator=generator)
    bound = 1 / math.sqrt(fan_in)  # PyTorch's default bias init
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def _train(point, x, y, x_valid, y_valid, num_classes, randomness, layers):
    """(model at its best validation check, that accuracy, its epoch) of one grid point."""
    model = weighted(build_mlp(x.shape[1] // layers, num_classes, point["hidden_layers"], point["initialization"],
                               randomness.torch), layers)
    model.to(x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=point["lr"])
    dropout_seed = randomness.loader_seed()
    best, best_epoch, best_state, waited = -1.0, 0, None, 0
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(dropout_seed)
        for epoch in range(1, MAX_EPOCHS + 1):
            model.train()
            order = torch.randperm(len(x), generator=randomness.torch).to(x.device)
            for start in range(0, len(order), BATCH):
                rows = order[start:start + BATCH]
                if len(rows) < 2:  # BatchNorm cannot train on one clip: the last batch of 1 is left out
                    continue
                optimizer.zero_grad()
                F.cross_entropy(model(x[rows]), y[rows]).backward()
                optimizer.step()
            if epoch % CHECK_EVERY:
                continue
            accuracy = float((_predict(model, x_valid) == y_valid).mean())
            if accuracy > best:
                best, best_epoch, waited = accuracy, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
                if waited >= PATIENCE:
                    break
    if best_state is None:  # fewer epochs than one check
        best, best_epoch = float((_predict(model, x_valid) == y_valid).mean()), MAX_EPOCHS
    else:
        model.load_state_dict(best_state)
    return model, best, best_epoch


@torch.no_grad()
def _predict(model, x):
    model.eval()
    return torch.cat([model(x[i:i + BATCH]).argmax(-1) for i in range(0, len(x), BATCH)]).cpu().numpy()
