"""`fusion-eval`: linear evaluation of a model's representations on the paper's tasks (or any local one).

    fusion-eval --model DIR_OR_HUB_ID --task fsdd us8k-3folds --output runs/x [--sweep] [--layers 3 6]
    fusion-eval --list-tasks [--data-dir D]     (every task, its source, and whether its data is here)

Runs on one CPU/GPU, or on N GPUs with `accelerate launch --multi_gpu --num_processes N -m fusion_eval.cli ...`.
"""

import argparse
import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .tasks import TASKS, list_tasks, resolve_task  # the registry is plain data: --help and --list-tasks load no model code

DEFAULT_CACHE = os.environ.get("FUSION_EVAL_CACHE", "~/.cache/fusion_eval")  # "~" expanded where used, kept in results.json
DEFAULT_DATA = os.environ.get("FUSION_EVAL_DATA_DIR", "data")
PACKAGES = ("torch", "transformers", "datasets", "torchcodec", "soundfile", "soxr", "accelerate", "evaluate",
            "scikit-learn", "numpy", "huggingface_hub", "modeling-fusion")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default once: not for None/False defaults, nor when the help text already names it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(prog="fusion-eval", description=__doc__.split("\n")[0],
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--list-tasks", action="store_true",
                        help="list every registry task (source, split rule, clip length, data found under "
                             "--data-dir/--metadata-dir) and exit; needs no model and no network")
    parser.add_argument("--model", help="model folder or Hub id (this package's or any transformers audio model); required")
    parser.add_argument("--task", nargs="+",
                        help=f"registry names ({', '.join(TASKS)}), folders (with a metadata.csv, or parquet shards "
                             "data/<split>-*.parquet), or Hub dataset ids owner/name[@revision]; required")
    parser.add_argument("--output", help="directory for results.json, results.md, layers.png, model_index.yaml; required")
    parser.add_argument("--layers", nargs="+", type=int, help="layers to fuse (default: the model's configured fusion)")
    parser.add_argument("--sweep", action="store_true", help="also probe every single layer (and the plain embedding)")
    parser.add_argument("--probe", nargs="+", choices=("linear", "mlp", "knn"), default=["linear"],
                        help="probes, one result column each: linear (the paper's, EVAR), mlp (HEAR's grid chosen on "
                             "validation), knn (cosine k-NN, k chosen on validation); see fusion_eval/probes/")
    parser.add_argument("--select-fusion", action="store_true",
                        help="rank every layer pair (or up to --max-layers) on validation data only, then probe the "
                             "chosen fusion, the best single layer and the plain embedding on the test clips; writes "
                             "selected_fusion.json and selection.png (one extraction: every layer is cached)")
    parser.add_argument("--max-layers", type=int, choices=(2, 3), default=2, help="largest fusion --select-fusion tries")
    parser.add_argument("--representation", nargs="+", choices=("all-layers", "weighted-sum"), default=[],
                        help="also probe derived representations: all-layers = every layer's clip embedding "
                             "concatenated; weighted-sum = a softmax weight per layer learned with the probe "
                             "(SUPERB's; layers of one width; trained by the linear and mlp probes, not k-NN)")
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="folder holding each task's folder ($FUSION_EVAL_DATA_DIR)")
    parser.add_argument("--metadata-dir", help="EVAR layout: metadata CSVs named <task folder>.csv (default: <folder>/metadata.csv)")
    parser.add_argument("--label-column", help="label column (overrides the registry)")
    parser.add_argument("--split-column", help="column of train/valid/test")
    parser.add_argument("--fold-column", help="column of integer folds (leave-one-fold-out)")
    parser.add_argument("--unit-sec", type=float, help="clip length in seconds (required for a custom task)")
    parser.add_argument("--split-file", metavar="CSV",
                        help="CSV of file_name (or the --join-column name) and split or fold, optionally label, joined "
                             "onto the dataset by file name (no folder, no extension); rows absent from it are dropped and counted")
    parser.add_argument("--join-column", help="dataset column holding each clip's file name, for --split-file")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable audio files (counted in results.json)")
    parser.add_argument("--batch-size", type=int, default=32, help="extraction batch per process")
    parser.add_argument("--num-workers", type=int,
                        help="dataloader workers decoding audio, per process (default: min(8, CPU cores per process - 1); 0 with 2 cores or fewer)")
    parser.add_argument("--chunk-size", type=int, default=512, help="clips per cache file (the resume granularity)")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE, help="embedding cache ($FUSION_EVAL_CACHE)")
    parser.add_argument("--streaming", action="store_true",
                        help="read Hub and parquet-folder tasks with load_dataset(streaming=True): extraction starts "
                             "with the first shard and nothing but the embedding cache is written (no Arrow copy, no "
                             "audio store); labels and splits are read first from their own columns; one process")
    parser.add_argument("--audio-store", metavar="DIR|none",
                        help="prepared audio: each task's clips decoded and resampled once per model rate, reused by "
                             "later runs (default: <--cache-dir>/audio; skipped, with a note, when the disk lacks the "
                             "space); 'none' decodes on every pass")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44], help="probe seeds")
    parser.add_argument("--lr", type=float, help="probe learning rate for every task (default: 3e-4 or the paper's per-task value)")
    parser.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto",
                        help="extraction precision; auto = bf16 on a GPU that supports it, else fp32 (the paper's)")
    parser.add_argument("--export-classifier", metavar="DIR",
                        help="save the fusion's linear probe (first seed, first run) as a ForAudioClassification folder "
                             "(DIR/<task> with several tasks)")
    parser.add_argument("--revision", help="Hub revision of the model")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run the model folder's own code (this package's models load without it)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_tasks:
        print(list_tasks(args.data_dir, args.metadata_dir))
        return
    missing = [f"--{name}" for name in ("model", "task", "output") if not getattr(args, name)]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)} (or --list-tasks)")
    for name in ("batch_size", "chunk_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.num_workers is None:
        from .extract import default_num_workers

        args.num_workers = default_num_workers()
    if args.num_workers < 0:
        parser.error("--num-workers must be >= 0")
    if "weighted-sum" in args.representation and set(args.probe) == {"knn"}:
        parser.error("--representation weighted-sum learns its layer weights with the probe and k-NN trains "
                     "nothing: add linear and/or mlp to --probe (k-NN still scores the other representations)")
    try:
        tasks = [resolve_task(spec, args.unit_sec, args.label_column, args.split_column, args.fold_column,
                              args.split_file, args.join_column) for spec in args.task]
        run(args, tasks)
    except (ValueError, OSError) as error:  # bad input, or a model/data path that cannot be read
        parser.exit(2, f"fusion-eval: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"\nfusion-eval: interrupted; finished cache chunks are kept in {args.cache_dir}: run the same "
                         "command again to resume\n")


def run(args, tasks):
    import torch
    from accelerate import Accelerator

    from modeling_fusion.audio_input import resampler_tag
    from modeling_fusion.cli.quiet import quiet_transformers

    from .probes.linear import load_accuracy_metric
    from .report import write_report
    from .representations import Embedder, probed_representations
    from .runner import RunSettings, plan_task, prepare_task, probe_task, select_fusion

    quiet_transformers()
    started = time.perf_counter()
    precision = args.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(mixed_precision=precision)
    every_layer = args.sweep or args.select_fusion or bool(args.representation)  # derived ones need each layer cached
    embedder = Embedder(args.model, args.layers, every_layer, args.revision, args.trust_remote_code)
    if "weighted-sum" in args.representation:
        embedder.check_one_width("--representation weighted-sum")
    embedder.model.to(accelerator.device)
    model_key = embedder.cache_key()
    loaded = time.perf_counter()
    settings = RunSettings(
        data_dir=args.data_dir, cache_dir=str(Path(args.cache_dir).expanduser()), metadata_dir=args.metadata_dir,
        batch_size=args.batch_size, num_workers=args.num_workers, chunk_size=args.chunk_size,
        skip_bad=args.skip_bad, seeds=tuple(args.seeds), lr=args.lr, export_classifier=bool(args.export_classifier),
        audio_store=None if args.streaming or args.audio_store == "none" else args.audio_store or str(
            Path(args.cache_dir, "audio").expanduser()), streaming=args.streaming,
        cache_tags={"precision": precision, "resampler": list(resampler_tag()), "soundfile": _version("soundfile")},
        probes=tuple(dict.fromkeys(args.probe)),
    )
    plans = [plan_task(task, embedder, settings) for task in tasks]
    prepared = [prepare_task(accelerator, embedder, model_key, task, *plan, settings) for task, plan in zip(tasks, plans)]
    accelerator.wait_for_everyone()
    accelerator.end_training()  # extraction was the distributed part: leave the process group before exiting
    if not accelerator.is_main_process:
        return
    metric = load_accuracy_metric()
    selection = select_fusion(prepared, embedder, settings, args.max_layers, accelerator.device) if args.select_fusion else None
    probed = probed_representations(embedder, args.sweep, args.representation, selection)
    if args.export_classifier and not ("linear" in settings.probes and any(rep.kind == "fusion" for rep in probed)):
        raise ValueError("--export-classifier ships the linear probe of a fusion: give --probe linear and a fusion "
                         "(the model's own, --layers, or --select-fusion)")
    results = {"tasks": {item.task.name: probe_task(item, embedder, settings, metric, accelerator.device, probed)
                         for item in prepared}}
    if selection:
        results["selection"] = selection
    results.update(
        model={"id": str(args.model), "name": embedder.name, "family": embedder.family, "fusion": embedder.is_fusion,
               "num_layers": embedder.num_layers, "cache_key": model_key, "config": embedder.model.config.to_dict(),
               "representations": [rep.__dict__ for rep in probed]},
        settings={**vars(args), "mixed_precision": precision,
                  "num_processes": accelerator.num_processes, "device": str(accelerator.device),
                  "crop_seed": settings.crop_seed, "std": "population (ddof=0) over seeds"},
        versions={"python": sys.version.split()[0], "platform": platform.platform(),
                  **{name: _version(name) for name in PACKAGES}},
        timings={"total_seconds": time.perf_counter() - started, "model_load_seconds": loaded - started},
    )
    if args.export_classifier:
        from .export import export_classifier

        for name, task in results["tasks"].items():
            folder = Path(args.export_classifier) / (name if len(tasks) > 1 else "")
            task["export"] = export_classifier(args.model, task.pop("export"), folder, task["unit_sec"], args.revision,
                                               args.trust_remote_code)
    paths = write_report(results, args.output)
    print(Path(paths["table"]).read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")


def _version(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
