"""Load a model and turn one forward pass into every representation the run probes.

Fusion models of this package (their config has `fusion_layers`) give the configured fusion
(`pooler_output`), the backbone's plain embedding and each layer l (`pooled_hidden_states[l]`, or
`hidden_states[l]` pooled over time with the config's pooling). Any other transformers audio encoder (wav2vec2,
HuBERT, WavLM, Whisper, CLAP, AST, ...) runs inside an `EncoderFusionModel` and gives its `hidden_states`, mean+max
pooled per layer over real frames, and a fusion = those pooled layers concatenated.
"""

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

import modeling_fusion  # noqa: F401  registers this package's models with the Auto classes
from modeling_fusion import fusion as fusion_recipe
from modeling_fusion import spectral
from modeling_fusion.modeling_encoder_fusion import EncoderFusionModel, load_encoder_feature_extractor
from modeling_fusion.cli.model_source import check_model_source


@dataclass(frozen=True)
class Representation:
    """key: file-safe id ("fusion_3_6", "layer_3", "plain"); kind: fusion | layer | plain | all-layers |
    weighted-sum;
    title: table row; parts: cache keys this representation concatenates (derived from cached layers,
    e.g. a fusion chosen by `--select-fusion`), empty when it is cached under its own key."""

    key: str
    kind: str
    title: str
    layers: tuple
    parts: tuple = ()


class Embedder:
    """Model + feature extractor; `embed(features)` -> {representation key: [B, D] float32}."""

    def __init__(self, model_id, layers=None, sweep=False, revision=None, trust_remote_code=False):
        check_model_source(model_id, revision)  # a missing folder / unreachable Hub id: one line, at once
        options = dict(revision=revision, trust_remote_code=trust_remote_code)
        config = AutoConfig.from_pretrained(model_id, **options)
        self.is_fusion = hasattr(config, "fusion_layers")
        if self.is_fusion:
            changes = {"embedding_type": "fusion"} if hasattr(config, "embedding_type") else {}
            if layers:
                changes["fusion_layers"] = list(layers)
            config = type(config).from_dict({**config.to_dict(), **changes})
            self.model = AutoModel.from_pretrained(model_id, config=config, **options).eval()
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(model_id, **options)
        else:  # a plain encoder (Whisper: its encoder, CLAP: its audio tower), real frames only
            self.model = EncoderFusionModel.from_encoder_pretrained(model_id, **options)
            self.feature_extractor = load_encoder_feature_extractor(model_id, **options)
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        self.model_id = model_id
        self.family = config.model_type.split("-")[0]
        self.name = getattr(config, "family_title", None) or Path(str(model_id)).name  # e.g. "CNN14"
        probe = self._forward(self.feature_extractor([np.zeros(self.sampling_rate, np.float32)],
                                                     sampling_rate=self.sampling_rate, return_tensors="pt"),
                              hidden=True, plain=True)
        self.num_layers = len(probe.hidden_states) - 1
        # hidden_states[0] of a CNN fusion model is its log-mel input; an encoder's is the first block's input
        self.first_layer = 0 if isinstance(self.model, EncoderFusionModel) else 1
        self.layer_widths = {l: int(self._layer(probe, l).shape[-1])
                             for l in range(self.first_layer, self.num_layers + 1)}
        self.has_plain = self.is_fusion and probe.plain_embedding is not None
        self.representations = self._choose(layers, sweep)
        self.needs_hidden = not self.is_fusion or any(r.kind == "layer" for r in self.representations)
        self.needs_plain = any(r.kind == "plain" for r in self.representations)

    def _choose(self, layers, sweep):
        name, count = self.name, self.num_layers
        if layers and not all(0 <= layer <= count for layer in layers):
            raise ValueError(f"--layers must be in 0-{count} for {self.model_id}, got {list(layers)}")
        fused = list(self.model.config.fusion_layers) if self.is_fusion else sorted(set(layers or ()))
        chosen = []
        if sweep:
            chosen += [Representation(f"layer_{l}", "layer", f"{name} #{l}", (l,)) for l in range(self.first_layer, count + 1)]
        elif not self.is_fusion:  # a plain encoder's baseline: its last layer
            chosen.append(Representation(f"layer_{count}", "layer", f"{name} #{count}", (count,)))
        if self.is_fusion or layers:
            tag = "#".join(str(l) for l in fused)
            chosen.append(Representation("fusion_" + tag.replace("#", "_"), "fusion", f"{name}-Fusion#{tag}", tuple(fused)))
        if self.has_plain:
            chosen.append(Representation("plain", "plain", name, ()))
        return chosen

    def check_one_width(self, option):
        """Raise ValueError naming `option` unless every layer's clip embedding has one width (a weighted sum)."""
        widths = sorted(set(self.layer_widths.values()))
        if len(widths) > 1:
            raise ValueError(f"{option} needs layers of one width, and {self.model_id}'s layers are {widths[0]}-"
                             f"{widths[-1]} wide; use --representation all-layers, or a "
                             "transformer encoder (AST, wav2vec2, HuBERT, WavLM, Whisper, CLAP)")

    def _forward(self, features, hidden, plain):
        if self.is_fusion:
            return self.model(**features, output_hidden_states=hidden, output_plain_embedding=plain)
        return self.model(**features, output_hidden_states=True)

    @torch.no_grad()
    def embed(self, features):
        """features: the feature extractor's tensors, on the model's device -> {key: [B, D] float32}."""
        out = self._forward(features, self.needs_hidden, self.needs_plain)
        pooled = {}
        for rep in self.representations:
            if rep.kind == "plain":
                pooled[rep.key] = out.plain_embedding.float()
            elif rep.kind == "fusion" and self.is_fusion:
                pooled[rep.key] = out.pooler_output.float()
            else:
                pooled[rep.key] = torch.cat([self._layer(out, l) for l in rep.layers], dim=-1)
        return pooled

    def _layer(self, out, layer):
        """Clip embedding of one layer: the model's own `pooled_hidden_states` (AST: (CLS+DIST)/2), else
        its per-frame hidden state pooled with the config's pooling (mean+max for transformers models)."""
        pooled = getattr(out, "pooled_hidden_states", None)
        if pooled is not None:
            return pooled[layer].float()
        pooling = getattr(self.model.config, "pooling", "mean+max")
        return fusion_recipe.pool_frames(out.hidden_states[layer].float(), pooling, getattr(out, "frame_mask", None))

    def cache_key(self):
        """Hash of what decides the embeddings: weights, config, feature extractor, model code, torch version."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        config = self.model.config.to_dict()
        config.pop("_name_or_path", None)
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        digest.update(self.feature_extractor.to_json_string().encode())
        for obj in (type(self.model), type(self.feature_extractor), fusion_recipe, spectral):
            digest.update(Path(inspect.getsourcefile(obj)).read_bytes())
        digest.update(torch.__version__.split("+")[0].encode())
        return digest.hexdigest()


def derived(name, kind, layers, remark=""):
    """A representation built from cached single layers: their clip embeddings concatenated (a fusion of
    `layers`, exact where the recipe pools each layer to the final frame rate, or every layer at once:
    "all-layers"), or side by side for a probe that learns their weighted sum ("weighted-sum")."""
    layers = tuple(sorted(layers))
    parts = tuple(f"layer_{l}" for l in layers)
    if kind == "all-layers":
        return Representation("all_layers", kind, f"{name} all layers", layers, parts)
    if kind == "weighted-sum":  # the parts side by side; the probe learns their softmax weights
        return Representation("weighted_sum", kind, f"{name} weighted sum of layers", layers, parts)
    tag = "#".join(str(l) for l in layers)
    title = f"{name}-Fusion#{tag}" + (f" ({remark})" if remark else "")
    return Representation("layers_" + tag.replace("#", "_"), kind, title, layers, tuple(f"layer_{l}" for l in layers))


def probed_representations(embedder, sweep, extra=(), selection=None):
    """What a run probes. Without `--select-fusion`: the embedder's representations (with `--sweep` every
    layer), less the single layers `--representation` alone made it cache (a plain transformers encoder keeps
    its last layer: its baseline, as without `--representation` or `--layers`). With a selection
    (`runner.select_fusion`'s dict): the chosen fusion, the best single layer, the configured fusion
    when it differs, the plain embedding (with `--sweep` every other layer too). Then each `extra`
    kind ("all-layers", "weighted-sum"), built from the cached layers."""
    chosen = []
    if selection:
        chosen.append(derived(embedder.name, "fusion", selection["chosen"], "chosen on validation"))
        best = selection["best_layer"]
        chosen.append(Representation(f"layer_{best}", "layer", f"{embedder.name} #{best} (best single layer on "
                                     "validation)", (best,)))
    baseline = None if embedder.is_fusion else f"layer_{embedder.num_layers}"
    for rep in embedder.representations:
        if rep.kind == "layer" and not sweep and rep.key != baseline:
            continue
        if rep.kind == "fusion" and selection and list(rep.layers) == list(selection["chosen"]):
            continue  # the same layers as the choice (the model's own output of them)
        if all(rep.key != c.key for c in chosen):
            chosen.append(rep)
    layers = [l for rep in embedder.representations if rep.kind == "layer" for l in rep.layers]
    for kind in extra:
        chosen.append(derived(embedder.name, kind, layers))
    return chosen
