"""Convert EfficientAT MobileNetV3 AudioSet checkpoints (`mn04_as_mAP_432.pt` and the mn01-mn40 siblings)."""

import logging

import torch

from .audioset_labels import label_maps, load_audioset_labels
from .checkpoints import load_torch_checkpoint
from ..configuration_efficientat import EfficientATFusionConfig
from ..feature_extraction_efficientat import EfficientATFeatureExtractor
from ..modeling_efficientat import EfficientATForAudioClassification
from .save_folder import save_model_folder

logger = logging.getLogger(__name__)

PUBLISHED_WIDTHS = (0.1, 0.2, 0.4, 0.5, 1.0, 2.0, 3.0, 4.0)  # mn01, mn02, mn04, mn05, mn10, mn20, mn30, mn40
BATCH_NORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
HEAD_KEYS = {"classifier.2": "classifier.dense", "classifier.5": "classifier.out_proj"}


def key_mapping(model):
    """{upstream key: our key} for every tensor of the checkpoint `model` (EfficientATForAudioClassification) loads.

    Upstream nests each stage as `features.{n}.block.{j}` with sub-layers numbered in order (the
    expand conv is absent when it would not change the width) and Conv-BN pairs as `.0`/`.1`.
    """
    mapping = {}

    def conv_norm(upstream, ours):
        mapping[f"{upstream}.0.weight"] = f"{ours}.conv.weight"
        mapping.update({f"{upstream}.1.{name}": f"{ours}.bn.{name}" for name in BATCH_NORM})

    stages = model.efficientat.features
    conv_norm("features.0", "efficientat.features.0")
    for n in range(1, len(stages) - 1):
        parts = [name for name in ("expand", "depthwise", "se", "project") if getattr(stages[n], name) is not None]
        for j, name in enumerate(parts):
            upstream, ours = f"features.{n}.block.{j}", f"efficientat.features.{n}.{name}"
            if name == "se":
                for param in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
                    mapping[f"{upstream}.conc_se_layers.0.{param}"] = f"{ours}.{param}"
            else:
                conv_norm(upstream, ours)
    conv_norm(f"features.{len(stages) - 1}", f"efficientat.features.{len(stages) - 1}")
    for upstream, ours in HEAD_KEYS.items():
        mapping.update({f"{upstream}.{param}": f"{ours}.{param}" for param in ("weight", "bias")})
    return mapping


def mismatches(state_dict, width_mult, num_classes):
    """Why a checkpoint does not fit the model of this width (empty list when it fits)."""
    config = EfficientATFusionConfig(width_mult=width_mult, num_labels=num_classes)
    with torch.device("meta"):
        model = EfficientATForAudioClassification(config)
    expected = model.state_dict()
    mapping = key_mapping(model)
    problems = [f"missing {key}" for key in mapping if key not in state_dict]
    problems += [f"unexpected {key}" for key in state_dict if key not in mapping]
    problems += [
        f"{key}: shape {tuple(state_dict[key].shape)}, expected {tuple(expected[ours].shape)}"
        for key, ours in mapping.items()
        if key in state_dict and state_dict[key].shape != expected[ours].shape
    ]
    return problems


def infer_width_mult(state_dict, num_classes):
    """The published width whose architecture has exactly the checkpoint's keys and shapes.

    The stem alone cannot tell (round8(16 w) is 8 for every w <= 0.5), so every tensor is compared.
    """
    fits = [width for width in PUBLISHED_WIDTHS if not mismatches(state_dict, width, num_classes)]
    if not fits:
        stem = tuple(state_dict["features.0.0.weight"].shape)
        raise ValueError(
            f"the checkpoint (stem conv {stem}) matches none of the published widths {PUBLISHED_WIDTHS}; "
            "pass --width-mult"
        )
    return fits[0]


def convert(checkpoint, output, width_mult=None, layers=None, labels=None):
    """Checkpoint file -> Hub-ready folder `output` (EfficientATForAudioClassification + feature extractor)."""
    state_dict = load_torch_checkpoint(checkpoint)
    if "features.0.0.weight" not in state_dict or "classifier.5.weight" not in state_dict:
        raise ValueError(
            f"{checkpoint}: not an EfficientAT MobileNetV3 checkpoint with the MLP head "
            "(no features.0.0.weight / classifier.5.weight)"
        )
    num_classes = state_dict["classifier.5.weight"].shape[0]
    if width_mult is None:
        width_mult = infer_width_mult(state_dict, num_classes)
    else:
        problems = mismatches(state_dict, width_mult, num_classes)
        if problems:
            raise ValueError(f"the checkpoint does not fit width {width_mult}: " + "; ".join(problems[:5]))
    id2label, label2id = label_maps(load_audioset_labels(labels, num_classes))
    options = {} if layers is None else {"fusion_layers": list(layers)}
    config = EfficientATFusionConfig(
        width_mult=width_mult, id2label=id2label, label2id=label2id,
        problem_type="multi_label_classification", **options,
    )
    model = EfficientATForAudioClassification(config).eval()
    mapping = key_mapping(model)
    model.load_state_dict({mapping[key]: value for key, value in state_dict.items()}, strict=True)
    logger.info(
        f"EfficientAT width {width_mult}, fusion of layers {config.fusion_layers} "
        f"(features.{', features.'.join(str(layer - 1) for layer in config.fusion_layers)}) -> {config.hidden_size}-d"
    )
    return save_model_folder(model, EfficientATFeatureExtractor(), output)


def add_arguments(parser):
    parser.add_argument("--width-mult", type=float,
                        help=f"width multiplier (default: inferred from the tensor shapes among {PUBLISHED_WIDTHS})")
    parser.add_argument("--layers", type=int, nargs="+",
                        help="layers to fuse, 1-17 where layer k + 1 is features.k (default: the config's)")
    parser.add_argument("--labels", help="class_labels_indices.csv with the AudioSet names")


def run(args):
    return convert(args.checkpoint, args.output, args.width_mult, args.layers, args.labels)
