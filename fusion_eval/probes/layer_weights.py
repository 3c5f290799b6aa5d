"""SUPERB's weighted sum of layers (`--representation weighted-sum`), learned with the probe it feeds.

s3prl's Featurizer (s3prl/nn/upstream.py) keeps one logit per layer, initialised to zero (equal weights),
and feeds the downstream model sum_l softmax(logits)_l * h_l, trained jointly with it at the downstream
learning rate. SUPERB's h_l are layer l's frames (raw, or layer-normed); here h_l is layer l's clip
embedding as fusion-eval caches it (its frames pooled over time, mean + max) after the probe's per-dimension
standardisation, so every representation still comes from one extraction. The weights therefore rank
layers by what the probe uses of their standardised clip embeddings, not by SUPERB's frame-level mix.
"""

import torch
from torch import nn


class LayerWeights(nn.Module):
    """x [B, L * D] (L equal-width layers side by side) -> [B, D] = sum_l softmax(logits)_l * x[:, l]."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.logits = nn.Parameter(torch.zeros(layers))

    def forward(self, x):
        return torch.einsum("l,bld->bd", self.logits.softmax(0), x.reshape(len(x), self.layers, -1))


def weighted(head, layers):
    """`head` (a module on [B, D]) behind a LayerWeights of `layers` layers; `head` itself when layers is 1."""
    return head if layers == 1 else nn.Sequential(LayerWeights(layers), head)


def learned_weights(model):
    """The softmax layer weights [L] of a model `weighted` built, as a list of floats (None without them)."""
    if isinstance(model, nn.Sequential) and isinstance(model[0], LayerWeights):
        return model[0].logits.detach().softmax(0).cpu().tolist()
    return None
