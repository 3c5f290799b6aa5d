"""Where a probe is trained: one file per probe, one signature for all.

- `linear.py`: the paper's linear probe (EVAR's, step for step): `--probe linear`, the default.
- `mlp.py`: HEAR's downstream MLP, its grid chosen on validation with early stopping: `--probe mlp`.
- `knn.py`: cosine k-NN on standardised embeddings, k chosen on validation (X-ARES): `--probe knn`.

Each is `probe(x_train, y_train, x_test, y_test, num_classes, randomness, x_valid=None, y_valid=None,
lr=..., metric=None, device="cpu", name=...) -> linear.ProbeResult`, prepares its data with
`linear.standardised_splits` (the same standardisation and validation clips for every probe), and
reads no test label before it scores the test clips.
"""

from .knn import knn_probe
from .linear import linear_probe
from .mlp import mlp_probe

PROBES = {"linear": linear_probe, "mlp": mlp_probe, "knn": knn_probe}
TITLES = {"linear": "linear", "mlp": "MLP", "knn": "k-NN"}
WEIGHTED_SUM_PROBES = ("linear", "mlp")  # the probes that learn `--representation weighted-sum`'s layer weights
