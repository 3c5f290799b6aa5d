"""Convert AST checkpoints: original release files (`audioset_10_10_0.4593.pth`, ...), transformers folders, Hub ids.

Original files keep the original numerics (LayerNorm eps 1e-6 in the transformer, 1e-5 in the head);
transformers checkpoints keep transformers' (its config's `layer_norm_eps`, 1e-12, for both).
"""

import logging
from pathlib import Path

from transformers import ASTFeatureExtractor, ASTForAudioClassification

from .audioset_labels import NUM_AUDIOSET_CLASSES, label_maps, load_audioset_labels
from .checkpoints import load_torch_checkpoint
from ..configuration_ast import AST_FIELDS, AstFusionConfig
from ..feature_extraction_ast import AstFusionFeatureExtractor
from ..cli.model_source import check_model_source
from ..modeling_ast import AstFusionForAudioClassification
from .save_folder import save_model_folder

logger = logging.getLogger(__name__)

# Published original checkpoints: patches in the position embedding -> (stride, max_length, (mean, std)).
AUDIOSET_STATS = (-4.2677393, 4.5689974)
ORIGINAL_LAYOUTS = {
    1212: (10, 1024, AUDIOSET_STATS),
    850: (12, 1024, AUDIOSET_STATS),
    657: (14, 1024, AUDIOSET_STATS),
    512: (16, 1024, AUDIOSET_STATS),
    144: (10, 128, (-6.845978, 5.5654526)),  # speechcommands_10_10_0.9812.pth
}
DROPPED = ("v.head.", "v.head_dist.")  # DeiT's unused ImageNet heads
HEAD_DIM = 64  # every DeiT / AST size uses 64-d attention heads


def _rename_block(rest, value):
    """Original block key suffix -> [(ASTModel key suffix, tensor)]; the fused qkv splits into q, k, v."""
    name, _, param = rest.rpartition(".")
    if name == "attn.qkv":
        return [(f"attention.{p}_proj.{param}", part) for p, part in zip("qkv", value.chunk(3, dim=0))]
    renames = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.o_proj",
               "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    if name not in renames:
        raise ValueError(f"unexpected key in an AST block: {rest}")
    return [(f"{renames[name]}.{param}", value)]


def convert_original_state_dict(state_dict):
    """Original AST keys (`module.v.*`, `module.mlp_head.*`) -> AstFusionForAudioClassification keys."""
    singles = {"v.cls_token": "embeddings.cls_token", "v.dist_token": "embeddings.distillation_token",
               "v.pos_embed": "embeddings.position_embeddings",
               "v.patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
               "v.patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
               "v.norm.weight": "layernorm.weight", "v.norm.bias": "layernorm.bias"}
    head = {"mlp_head.0": "classifier.layernorm", "mlp_head.1": "classifier.dense"}
    converted = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.startswith(DROPPED):
            continue
        if key in singles:
            converted[f"ast_fusion.ast.{singles[key]}"] = value
        elif key.startswith("v.blocks."):
            index, rest = key[len("v.blocks."):].split(".", 1)
            for name, tensor in _rename_block(rest, value):
                converted[f"ast_fusion.ast.layers.{index}.{name}"] = tensor
        elif key.rpartition(".")[0] in head:
            module, _, param = key.rpartition(".")
            converted[f"{head[module]}.{param}"] = value
        else:
            raise ValueError(f"unexpected key in an original AST checkpoint: {key}")
    return converted


def original_ast_config(state_dict):
    """ASTConfig fields of an original checkpoint (keys without `module.`), from its tensor shapes and the
    published layouts; also returns the fbank (mean, std) its recipe used."""
    if "v.pos_embed" not in state_dict:
        raise ValueError("not an original AST checkpoint: no `module.v.pos_embed`")
    patches = state_dict["v.pos_embed"].shape[1] - 2
    if patches not in ORIGINAL_LAYOUTS:
        raise ValueError(f"{patches} patches match no published AST layout ({sorted(ORIGINAL_LAYOUTS)})")
    stride, max_length, stats = ORIGINAL_LAYOUTS[patches]
    hidden = state_dict["v.cls_token"].shape[-1]
    ast_config = dict(
        hidden_size=hidden,
        num_hidden_layers=len({key.split(".")[2] for key in state_dict if key.startswith("v.blocks.")}),
        num_attention_heads=hidden // HEAD_DIM,
        intermediate_size=state_dict["v.blocks.0.mlp.fc1.weight"].shape[0],
        layer_norm_eps=1e-6,  # timm's ViT
        patch_size=state_dict["v.patch_embed.proj.weight"].shape[-1],
        frequency_stride=stride,
        time_stride=stride,
        max_length=max_length,
        num_mel_bins=128,
    )
    return ast_config, stats


def _problem_type(num_classes):
    """AudioSet heads are multi-label (sigmoid); other heads (speech commands) single-label."""
    return "multi_label_classification" if num_classes == NUM_AUDIOSET_CLASSES else "single_label_classification"


def from_original(path, layers, labels_csv):
    state_dict = {key.removeprefix("module."): value for key, value in load_torch_checkpoint(path).items()}
    converted = convert_original_state_dict(state_dict)
    ast_config, (mean, std) = original_ast_config(state_dict)
    if "mlp_head.1.weight" not in state_dict:
        raise ValueError(f"{path}: no `mlp_head` classifier; expected a fine-tuned original AST checkpoint")
    num_classes = state_dict["mlp_head.1.weight"].shape[0]
    id2label, label2id = label_maps(load_audioset_labels(labels_csv, num_classes))
    config = AstFusionConfig(ast_config=ast_config, fusion_layers=list(layers), classifier_layer_norm_eps=1e-5,
                             id2label=id2label, label2id=label2id, problem_type=_problem_type(num_classes))
    model = AstFusionForAudioClassification(config).eval()
    model.load_state_dict(converted, strict=True)
    extractor = AstFusionFeatureExtractor(max_length=ast_config["max_length"], mean=mean, std=std)
    return model, extractor


def from_transformers(checkpoint, layers, labels_csv):
    """A transformers `ASTForAudioClassification` folder or Hub id (needs network for a Hub id)."""
    try:
        source, info = ASTForAudioClassification.from_pretrained(checkpoint, output_loading_info=True)
    except OSError as error:
        raise ValueError(
            f"could not load the transformers AST checkpoint {checkpoint!r} (not a local file or folder, so it was "
            f"tried as a Hub id): {error}\nA Hub id needs network access; offline, download it where there is "
            f"network (`hf download {checkpoint} --local-dir DIR`) and pass DIR."
        ) from None
    if info["missing_keys"]:
        raise ValueError(f"{checkpoint}: not a complete ASTForAudioClassification, missing {info['missing_keys']}")
    hf_config = source.config
    id2label, label2id = hf_config.id2label, hf_config.label2id
    if labels_csv is not None:
        id2label, label2id = label_maps(load_audioset_labels(labels_csv, hf_config.num_labels))
    config = AstFusionConfig(
        ast_config={name: getattr(hf_config, name) for name in AST_FIELDS}, fusion_layers=list(layers),
        classifier_layer_norm_eps=hf_config.layer_norm_eps, id2label=id2label, label2id=label2id,
        problem_type=hf_config.problem_type or _problem_type(hf_config.num_labels),
    )
    model = AstFusionForAudioClassification(config).eval()
    model.ast_fusion.ast.load_state_dict(source.audio_spectrogram_transformer.state_dict(), strict=True)
    model.classifier.load_state_dict(source.classifier.state_dict(), strict=True)
    try:
        hf_extractor = ASTFeatureExtractor.from_pretrained(checkpoint)
        settings = {key: getattr(hf_extractor, key) for key in ("max_length", "mean", "std", "do_normalize")}
    except OSError:
        logger.warning(f"{checkpoint}: no preprocessor_config.json; using the AudioSet fbank settings")
        settings = {"max_length": config.ast_config["max_length"]}
    return model, AstFusionFeatureExtractor(num_mel_bins=config.ast_config["num_mel_bins"], **settings)


def convert(checkpoint, output, layers=(5, 12), labels=None):
    """Original `.pth` file, transformers folder or Hub id -> Hub-ready folder `output`."""
    path = Path(checkpoint)
    if path.is_file():
        model, extractor = from_original(path, layers, labels)
    else:
        try:
            check_model_source(checkpoint)  # a missing folder or an unreachable Hub id: one line, at once
        except ValueError as error:
            raise ValueError(f"{error}\nGive a .pth file, a transformers AST folder or a Hub id; offline, download a "
                             f"Hub model where there is network (`hf download {checkpoint} --local-dir DIR`) and "
                             "pass DIR.") from None
        model, extractor = from_transformers(checkpoint, layers, labels)
    config = model.config
    logger.info(f"AST {config.num_layers} blocks, fusion of blocks {config.fusion_layers} -> {config.hidden_size}-d")
    return save_model_folder(model, extractor, output)


def add_arguments(parser):
    parser.add_argument("--layers", type=int, nargs="+", default=[5, 12],
                        help="blocks (1-based) to fuse (default: 5 12)")
    parser.add_argument("--labels", help="class_labels_indices.csv with the AudioSet names (replaces a folder's own)")


def run(args):
    return convert(args.checkpoint, args.output, args.layers, args.labels)
