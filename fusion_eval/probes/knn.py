"""k-nearest-neighbour probe: cosine similarity on standardised embeddings, k chosen on validation.

X-ARES reports a k-NN score next to its MLP (a probe with no training: how well the embedding's own
geometry separates the classes). Here the data preparation is EVAR's, shared with the linear probe:
StandardScaler fit on the training clips, the same validation clips (the task's valid split, or the
class-complete 10% of the training clips the linear probe holds out for this seed). Each k of `K_GRID`
votes with the k most cosine-similar remaining training clips (uniform weights, a tie goes to the
lowest class index, as scikit-learn's KNeighborsClassifier); the k with the best validation accuracy
(ties: the smaller k) classifies the test clips against the same training clips.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .linear import ProbeResult, load_accuracy_metric, one_thread, standardised_splits

K_GRID = (1, 3, 5, 10, 20, 50)
BLOCK = 1024  # query clips per similarity block


def knn_probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid=None, y_valid=None,
              lr=None, metric=None, device="cpu", name="embeddings"):
    """Test accuracy of cosine k-NN; x_*/y_* as `linear.linear_probe` takes them (`lr` is unused).

    Returns ProbeResult with `chosen={"k": k}`, `valid_accuracy` of that k, `best_epoch`/`epochs` None.
    Raises ValueError naming `name` when the training clips left after the validation hold-out are
    fewer than the largest k of K_GRID (pass `--probe linear`, or a task with more training clips).
    """
    with one_thread(device):
        data = standardised_splits(x_train, y_train, x_test, y_test, randomness, x_valid, y_valid, device, name)
        if len(data.train_pos) < max(K_GRID):
            raise ValueError(f"{name}: the k-NN probe's k grid {list(K_GRID)} needs at least {max(K_GRID)} training "
                             f"clips after the validation hold-out, got {len(data.train_pos)}; drop `knn` from --probe "
                             "for this task or give it more training clips")
        neighbours = _unit(data.x_train[data.train_pos])
        labels = torch.as_tensor(data.y_train, device=neighbours.device)
        valid = _votes(_unit(data.x_valid[data.valid_pos]), neighbours, labels, num_classes)
        accuracies = {k: float((votes.argmax(-1).cpu().numpy() == data.y_valid).mean()) for k, votes in valid.items()}
        k = max(K_GRID, key=lambda k: (accuracies[k], -k))
        predictions = _votes(_unit(data.x_test[np.arange(len(data.y_test))]), neighbours, labels, num_classes,
                             (k,))[k].argmax(-1).cpu().numpy()
        metric = metric or load_accuracy_metric()
        accuracy = metric.compute(predictions=predictions, references=data.y_test)["accuracy"]
        return ProbeResult(accuracy, predictions, None, None, accuracies[k], chosen={"k": k})


def _unit(x):
    return F.normalize(x.float(), dim=-1)


@torch.no_grad()
def _votes(queries, neighbours, labels, num_classes, ks=K_GRID):
    """{k: [n_queries, C] vote counts among the k most similar neighbours} (cosine of unit vectors)."""
    out = {k: [] for k in ks}
    for start in range(0, len(queries), BLOCK):
        order = (queries[start:start + BLOCK] @ neighbours.T).topk(max(ks), dim=-1).indices
        hits = F.one_hot(labels[order], num_classes).float()  # [q, max k, C], nearest first
        for k in ks:
            out[k].append(hits[:, :k].sum(1))
    return {k: torch.cat(v) for k, v in out.items()}
