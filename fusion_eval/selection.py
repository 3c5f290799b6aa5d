"""`--select-fusion`: rank every layer combination on validation data only, from one extraction.

The fusion recipe pools every fused layer to the backbone's final frame rate, and mean+max pooling
acts per dimension, so the clip embedding of a fusion of layers (a, b) is the concatenation of the
two layers' own clip embeddings (`pooled_hidden_states`): every candidate is built from the cached
per-layer embeddings of the `--sweep` extraction, and its StandardScaler'd version is the concatenation
of the standardised layers.

Criterion (cheap, and honest: no test clip is read). For each task and run (the split, or each
held-out fold) the training clips of that run are split as the linear probe splits them for the first
seed (the task's valid split, or the same class-complete 10% hold-out), and every candidate (each
single layer, each pair, with `max_layers=3` each triple) gets EVAR's linear probe (StandardScaler,
nn.Linear init, Adam with the task's learning rate, weight decay 1e-8, batch min(200, n), loss
-mean(one_hot * log_softmax)) for `EPOCHS` epochs; its score is the best validation accuracy over
those epochs. All candidates train at once as one block-structured linear layer: the parameters of
different candidates never mix (the loss is a sum of per-candidate losses; Adam is element-wise), so
each is the independent probe of its concatenation, on the same mini-batches. A candidate's task score
is the mean over the task's runs; the choice is the best mean over the tasks (ties: fewer layers, then
the lower layers). The chosen fusion, the best single layer (same criterion) and the plain embedding
then get the full protocol (every seed, every probe) on the test clips.
"""

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from .probes.linear import MAX_BATCH, WEIGHT_DECAY, ProbeRandomness, fit_scaler, one_thread
from .splits import class_complete_split

EPOCHS = 20


def candidate_sets(layers, max_layers=2):
    """Every single layer and every combination of 2..max_layers distinct layers, as sorted tuples."""
    if max_layers not in (2, 3):
        raise ValueError(f"--max-layers must be 2 or 3, got {max_layers}")
    layers = sorted(layers)
    return [c for size in range(1, max_layers + 1) for c in itertools.combinations(layers, size)]


def score_task(task_name, runs, labels, layer_rows, layers, candidates, seed, lr, device="cpu"):
    """Mean validation accuracy over `runs` of every candidate: {candidate tuple: accuracy}.

    runs: `splits.ProbeRun`s (only `train` and `valid` rows are read); labels: [n_rows] labels of the
    task table, of which only training/validation rows are looked at; layer_rows(layer, rows) ->
    float32 [len(rows), D_layer] (the train-role view). Raises ValueError naming the task when a run's
    validation clips cannot be drawn (too few training clips per class).
    """
    randomness = ProbeRandomness(seed)
    scores = []
    for run in runs:
        classes = sorted(set(labels[run.train].tolist()))
        index = {label: i for i, label in enumerate(classes)}
        y = np.array([index[label] for label in labels[run.train]])
        scalers = {layer: fit_scaler(layer_rows(layer, run.train), f"task {task_name!r}, layer {layer}")
                   for layer in layers}
        if run.valid is None:
            try:
                fit_pos, valid_pos = class_complete_split(y, randomness.numpy)
            except ValueError as error:
                raise ValueError(f"task {task_name!r}, {run.name}: --select-fusion needs validation clips: {error}")
            fit_rows, valid_rows, y_fit, y_valid = run.train[fit_pos], run.train[valid_pos], y[fit_pos], y[valid_pos]
        else:
            unknown = sorted(set(labels[run.valid].tolist()) - set(classes))
            if unknown:
                raise ValueError(f"task {task_name!r}: valid labels {unknown[:5]} never occur in training; fix the split")
            fit_rows, valid_rows, y_fit = run.train, run.valid, y
            y_valid = np.array([index[label] for label in labels[run.valid]])

        def scaled(layer, rows):
            scaler = scalers[layer]
            x = torch.from_numpy(layer_rows(layer, rows))
            return ((x - torch.from_numpy(scaler.mean_.astype(np.float32))) /
                    torch.from_numpy(scaler.scale_.astype(np.float32))).to(device)

        fit = [scaled(layer, fit_rows) for layer in layers]
        valid = [scaled(layer, valid_rows) for layer in layers]
        with one_thread(device):
            scores.append(train_candidates(fit, y_fit, valid, y_valid, len(classes),
                                           [[layers.index(l) for l in c] for c in candidates], randomness.torch, lr,
                                           batch=min(MAX_BATCH, len(run.train))))
    return dict(zip(candidates, np.mean(scores, axis=0).tolist()))


def train_candidates(x_fit, y_fit, x_valid, y_valid, num_classes, candidates, generator, lr, epochs=EPOCHS,
                     batch=MAX_BATCH):
    """Best validation accuracy over `epochs` of one linear probe per candidate, all trained at once.

    x_fit / x_valid: per layer, standardised tensors [n_fit, D_l] / [n_valid, D_l]; candidates: lists of
    indices into those layers; generator: torch.Generator for init and shuffling. Returns [n_candidates].
    """
    device = x_fit[0].device
    fan_in = torch.tensor([sum(x_fit[l].shape[1] for l in c) for c in candidates], dtype=torch.float32)
    bound = (1 / fan_in.sqrt()).to(device)  # nn.Linear's init for each candidate's own fan-in
    members = [torch.tensor([i for i, c in enumerate(candidates) if layer in c], dtype=torch.long, device=device)
               for layer in range(len(x_fit))]
    weights = []
    for layer, index in enumerate(members):
        w = torch.rand(x_fit[layer].shape[1], len(index), num_classes, generator=generator).to(device)
        weights.append(((2 * w - 1) * bound[index][None, :, None]).requires_grad_())
    bias = ((2 * torch.rand(len(candidates), num_classes, generator=generator).to(device) - 1) *
            bound[:, None]).requires_grad_()
    optimizer = torch.optim.Adam(weights + [bias], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=WEIGHT_DECAY)
    targets = F.one_hot(torch.as_tensor(y_fit), num_classes).float().to(device)
    y_valid = torch.as_tensor(y_valid, device=device)
    best = torch.zeros(len(candidates), device=device)

    def logits(xs, rows=None):
        out = bias.expand(len(xs[0]) if rows is None else len(rows), -1, -1).clone()
        for layer, index in enumerate(members):
            if len(index):
                x = xs[layer] if rows is None else xs[layer][rows]
                out = out.index_add(1, index, (x @ weights[layer].flatten(1)).view(len(x), len(index), num_classes))
        return out  # [n, candidates, C]

    for _ in range(epochs):
        order = torch.randperm(len(y_fit), generator=generator).to(device)
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            loss = -(targets[rows][:, None, :] * F.log_softmax(logits(x_fit, rows), dim=-1)).mean(dim=(0, 2)).sum()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            best = torch.maximum(best, (logits(x_valid).argmax(-1) == y_valid[:, None]).float().mean(0))
    return best.cpu().numpy()


def choose(task_scores):
    """task_scores: {task: {candidate: accuracy}} -> (mean over tasks per candidate, chosen fusion (2+ layers),
    best single layer), ties broken towards fewer, then lower, layers."""
    candidates = list(next(iter(task_scores.values())))
    mean = {c: float(np.mean([scores[c] for scores in task_scores.values()])) for c in candidates}
    rank = lambda c: (-mean[c], len(c), c)  # noqa: E731
    fusion = min((c for c in candidates if len(c) > 1), key=rank)
    single = min((c for c in candidates if len(c) == 1), key=rank)
    return mean, list(fusion), single[0]
