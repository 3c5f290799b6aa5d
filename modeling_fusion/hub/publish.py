"""Build (and push) the published Hub repos from original checkpoints.

    python -m modeling_fusion.hub build VARIANT --checkpoint PATH --output DIR
        [--labels class_labels_indices.csv] [--results runs/x/results.json] [--push [REPO_ID]]
    python -m modeling_fusion.hub list

A variant is a folder of `modeling_fusion/hub/configs/`: `variant.json` (backbone, `hub_id`: the repository
`--push` publishes to by default, source checkpoint, card metadata), `config.json` (the published model settings, applied on top of the conversion) and
`preprocessor_config.json` (the front end the checkpoint must have; checked, not changed).
"""

import argparse
import hashlib
import importlib
import json
import logging
import sys
from pathlib import Path

from huggingface_hub import HfApi, get_token
from transformers import AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

from ..cli.quiet import quiet_transformers
from ..convert import CONVERTERS
from ..convert.save_folder import save_model_folder
from .model_card import render_card

logger = logging.getLogger("modeling_fusion.hub")
HUB_CONFIGS = Path(__file__).resolve().parent / "configs"
LICENSES = {
    "mit": "MIT License",
    "apache-2.0": "Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0)",
    "bsd-3-clause": "BSD 3-Clause License",
}


def variants():
    return sorted(path.name for path in HUB_CONFIGS.iterdir() if (path / "variant.json").exists())


def load_variant(name):
    folder = HUB_CONFIGS / name
    if not (folder / "variant.json").exists():
        raise ValueError(f"unknown variant {name!r}; the published variants are: {', '.join(variants())}")
    return {part: json.loads((folder / f"{part}.json").read_text())
            for part in ("variant", "config", "preprocessor_config")}


def verify_checksums(path, source):
    """sha256 (or the prefix a torch.hub file name carries) must match where known, else a ValueError;
    an md5 from a secondary source only warns."""
    data = Path(path).read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    expected = source.get("sha256") or source.get("sha256_prefix")
    if expected and not sha256.startswith(expected):
        raise ValueError(f"{path}: sha256 {sha256[:16]}... differs from the published {source['file_name']} "
                         f"({expected}); re-download it, or pass --no-verify to build from a different file on purpose")
    if source.get("md5") and hashlib.md5(data).hexdigest() != source["md5"]:
        logger.warning(f"{path}: md5 differs from {source['md5']} ({source.get('md5_note', '')})")


def apply_variant(folder, spec):
    """Reload the converted folder with the variant's model settings, check its front end, re-save."""
    architecture = json.loads((Path(folder) / "config.json").read_text())["architectures"][0]
    auto = AutoModelForAudioClassification if architecture.endswith("ForAudioClassification") else AutoModel
    model = auto.from_pretrained(folder, **{k: v for k, v in spec["config"].items() if k != "model_type"})
    if model.config.model_type != spec["config"]["model_type"]:
        raise ValueError(f"the checkpoint converted to {model.config.model_type}, the variant is "
                         f"{spec['config']['model_type']}")
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    for key, expected in spec["preprocessor_config"].items():
        actual = type(extractor).__name__ if key == "feature_extractor_type" else getattr(extractor, key, None)
        if actual != expected:
            raise ValueError(f"the checkpoint gives {key}={actual!r}, the variant publishes {expected!r}: "
                             "is it the right checkpoint for this variant?")
    save_model_folder(model.eval(), extractor, folder)


def write_license(folder, source):
    text = (f"The weights in this repository are converted from {source['file_name']} ({source['url']}),\n"
            f"released by {source['license_holder']} under the {LICENSES.get(source['license'], source['license'])}"
            f" ({source['project_url']}).\nThe code files are MIT-licensed (modeling-fusion).\n")
    (Path(folder) / "LICENSE").write_text(text)


def hub_id(name):
    """The Hub repository (owner/name) variant `name` is published to: its variant.json's `hub_id`."""
    return load_variant(name)["variant"]["hub_id"]


def build(name, checkpoint, output, labels=None, results=None, repo_id=None, verify=True):
    """Convert `checkpoint` into a complete Hub folder for variant `name`; returns the folder.

    labels: the class-name CSV for variants with a head (`labels_file` in variant.json, else AudioSet's
    class_labels_indices.csv); results: a fusion-eval results.json (or its folder) for the card's model-index;
    repo_id: the repository the card names (default: the variant's `hub_id`)."""
    spec = load_variant(name)
    variant = spec["variant"]
    if not Path(checkpoint).exists():
        raise ValueError(f"checkpoint not found: {checkpoint} (download {variant['source']['url']})")
    if verify and Path(checkpoint).is_file():  # a transformers folder (encoder variants) has no one checksum
        verify_checksums(checkpoint, variant["source"])
    converter = importlib.import_module(CONVERTERS[variant["backbone"]])
    extra = {"labels": labels} if variant.get("audioset_labels") else {}
    converter.convert(checkpoint, output, **variant.get("converter_args", {}), **extra)
    apply_variant(output, spec)
    write_license(output, variant["source"])
    render_card(variant, output, repo_id or variant["hub_id"], results).save(Path(output) / "README.md")
    return Path(output)


def push(folder, repo_id, name, private=False, api=None):
    """Upload `folder` to `repo_id`. Failures raise a clear error and leave the folder as it is."""
    api = api or HfApi()
    if get_token() is None:
        raise ValueError(f"no Hugging Face token: run `hf auth login` or set HF_TOKEN. The folder {folder} is "
                         f"complete; push it later with: python -m modeling_fusion.hub push {folder} {repo_id}")
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        return api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                 commit_message=f"Upload {name} (modeling-fusion)")
    except Exception as error:  # network, auth and Hub errors all end here; nothing local is touched
        raise ValueError(f"pushing {folder} to {repo_id} failed ({type(error).__name__}: {error}). The local folder "
                         "is intact; check the network and your token's write access, then push again.") from error


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m modeling_fusion.hub", description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the published variants")
    build_parser = commands.add_parser("build", help="convert a checkpoint into a Hub folder (and push it)")
    build_parser.add_argument("variant")
    build_parser.add_argument("--checkpoint", required=True)
    build_parser.add_argument("--output", required=True)
    build_parser.add_argument("--labels", help="class names for variants with a head: class_labels_indices.csv "
                              "(AudioSet), yamnet_class_map.csv for yamnet-fusion-6-14 (`list` names each file)")
    build_parser.add_argument("--results", help="a fusion-eval results.json (or its --output folder): the card's own "
                              "fusion's accuracies go into its model-index, the run's table into its text")
    build_parser.add_argument("--push", metavar="REPO_ID", nargs="?", const="",
                              help="upload the folder to this Hub repo (alone: the variant's hub_id, see `list`)")
    build_parser.add_argument("--private", action="store_true")
    build_parser.add_argument("--no-verify", action="store_true", help="skip the checkpoint checksum check")
    push_parser = commands.add_parser("push", help="upload a built folder")
    push_parser.add_argument("folder")
    push_parser.add_argument("repo_id")
    push_parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    quiet_transformers()
    try:
        if args.command == "list":
            for name in variants():
                variant = load_variant(name)["variant"]
                source = variant["source"]
                labels = variant.get("labels_file", "class_labels_indices.csv") if variant["audioset_labels"] else "-"
                print(f"{name:34s} {variant['hub_id']:52s} {source['file_name']:28s} --labels {labels:26s} "
                      f"{source['url']}")
        elif args.command == "build":
            repo_id = (args.push or hub_id(args.variant)) if args.push is not None else None
            folder = build(args.variant, args.checkpoint, args.output, args.labels, args.results, repo_id,
                           verify=not args.no_verify)
            print(f"built {folder}")
            if repo_id:
                push(folder, repo_id, args.variant, args.private)
                print(f"pushed {folder} to https://huggingface.co/{repo_id}")
        else:
            if not Path(args.folder).is_dir():
                raise ValueError(f"model folder {args.folder} does not exist; build it first with "
                                 "`python -m modeling_fusion.hub build VARIANT --checkpoint FILE --output FOLDER`.")
            push(args.folder, args.repo_id, Path(args.folder).name, args.private)
            print(f"pushed {args.folder} to https://huggingface.co/{args.repo_id}")
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")


