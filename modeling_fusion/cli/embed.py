"""fusion-embed: clip embeddings for a folder of audio or an audiofolder dataset.

    fusion-embed MODEL AUDIO_DIR --output embeddings.npz [--per-layer] [--per-frame] [--skip-bad]

MODEL is a converted folder or a Hub id. Every file is read with the package's one input path
(`audio_input.load_audio`: all channels averaged, soxr HQ resampling), as the pipeline and fusion-eval
do. The output .npz holds `embeddings` [N, D], `files`, any metadata columns, `resampler`
("soxr", version, "HQ"), with --per-layer `layer_<l>` [N, D_l] (mean+max of each layer's frames), and
with --skip-bad `skipped` / `skipped_errors` (the files left out and why). Long runs save progress
next to the output (atomically) and resume where they stopped. A file whose whole-clip pass would need more
than --memory-budget-gib (default 1) is embedded on its own in overlapping chunks with bounded memory
(chunking.py; exact but for AST's windows); files that fit run whole, in batches within the budget.
"""

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch

from .file_list import durations, list_audio
from ..audio_input import check_clip, load_audio, resampler_tag
from ..chunking import DEFAULT_MEMORY_BUDGET_GIB, chunk_length, embed_long_clip, whole_clip_gib
from ..inference import embed
from .model_source import check_model_source, load_pretrained
from .quiet import progress, quiet_transformers

logger = logging.getLogger("fusion-embed")
SAVE_EVERY = 20  # batches between progress saves


def load_model(model_id, random_weights_demo=None):
    """(model, feature_extractor) from a folder / Hub id, or random weights for a named backbone.

    Raises ValueError at once for a missing folder or an unreachable Hub id (`check_model_source`).
    """
    if random_weights_demo:
        from .. import BACKBONES

        config_class, model_class, _, extractor_class = BACKBONES[random_weights_demo]
        logger.warning(
            f"RANDOM-WEIGHTS DEMO: {random_weights_demo} is built with random weights. The embeddings only "
            "exercise the pipeline and carry no pretrained knowledge."
        )
        torch.manual_seed(0)
        return model_class(config_class()).eval(), extractor_class()
    check_model_source(model_id)
    return load_pretrained(
        model_id,
        "Convert a published checkpoint into a folder first (`python -m modeling_fusion.hub build NAME --checkpoint "
        "FILE --output DIR`; `python -m modeling_fusion.hub list` shows the names), or, only to try the pipeline, "
        "pass --random-weights-demo BACKBONE (embeddings will be meaningless).")


def run_fingerprint(model_id, files, args):
    text = json.dumps([model_id, args.random_weights_demo, args.per_layer, args.per_frame, args.skip_bad,
                       list(resampler_tag()), args.chunk_length_s, args.memory_budget_gib, [str(f) for f in files]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_progress(progress_file, fingerprint):
    """{file index: result} saved by an earlier run with the same fingerprint; {} when there is none or
    the file is damaged (reported, then discarded: a torn save never blocks a run)."""
    if progress_file is None or not progress_file.exists():
        return {}
    try:
        with np.load(progress_file, allow_pickle=True) as saved:
            if str(saved["fingerprint"]) != fingerprint:
                return {}
            return saved["results"].item()
    except Exception as error:  # any damage: torn zip, bad pickle, truncated array, missing key
        logger.warning(f"progress file {progress_file} is damaged ({type(error).__name__}: {error}); "
                       "discarding it and starting over")
        progress_file.unlink(missing_ok=True)
        return {}


def save_progress(progress_file, fingerprint, done):
    """Write the progress file atomically: a temporary file in the same folder, then os.replace."""
    temporary = progress_file.with_name(f".{progress_file.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, fingerprint=fingerprint, results=np.array(done, dtype=object))
    os.replace(temporary, progress_file)


def read_clip(path, extractor):
    """File -> mono float32 at the extractor's rate, checked long enough; ValueError naming the file."""
    rate, min_samples = extractor.sampling_rate, getattr(extractor, "min_samples", 1)
    wave = load_audio(path, rate, name=str(path), min_samples=min_samples)
    return check_clip(wave, rate, min_samples, str(path))


def embed_folder(model, extractor, paths, batch_size, per_layer, per_frame, progress_file=None, fingerprint=None,
                 skip_bad=False, chunk_length_s=None, memory_budget_gib=DEFAULT_MEMORY_BUDGET_GIB):
    """Embed every file; returns one dict of arrays per file, or {"skipped": error} for a file that
    could not be read or is too short when `skip_bad` (else that ValueError, naming the file, is raised).
    A file runs alone through `chunking.embed_long_clip` when it is chunked (`chunking.chunk_length`: its
    whole-clip pass would exceed `memory_budget_gib`) or when `batch_size` files like it would exceed the budget;
    `chunk_length_s` as in `embed_long_clip`. Progress is saved to `progress_file` and resumed."""
    done = load_progress(progress_file, fingerprint)
    if done:
        logger.info(f"resuming: {len(done)} of {len(paths)} files already done")
    # Shortest first: a model runs each distinct frame count as its own sub-batch (padding never changes an
    # embedding), so batches of similar lengths share forwards; results stay in file order.
    seconds = durations(paths)
    todo = sorted((i for i in range(len(paths)) if i not in done), key=lambda i: seconds[i])
    batches = [todo[start:start + batch_size] for start in range(0, len(todo), batch_size)]
    for count, batch in enumerate(progress(batches, desc="embedding", unit="batch"), 1):
        clips = {}
        for index in batch:
            try:
                clips[index] = read_clip(paths[index], extractor)
            except ValueError as error:
                if not skip_bad:
                    raise ValueError(f"{error} Fix or remove the file, or pass --skip-bad to skip it.") from None
                logger.warning(f"skipping {paths[index]}: {error}")
                done[index] = {"skipped": str(error)}
        def alone(clip):
            cost = whole_clip_gib(model.config, len(clip), extractor.sampling_rate)
            return (chunk_length(model, extractor, len(clip), chunk_length_s, memory_budget_gib) is not None or
                    (cost is not None and memory_budget_gib is not None and cost * batch_size > memory_budget_gib))

        for index in [i for i, clip in clips.items() if alone(clip)]:
            out = embed_long_clip(model, extractor, clips.pop(index), chunk_length_s, per_layer, per_frame,
                                  memory_budget_gib)
            done[index] = _row_result(out, 0, per_layer, per_frame)
        if clips:
            out = embed(model, extractor, list(clips.values()), extractor.sampling_rate, output_hidden_states=per_layer)
            for row, index in enumerate(clips):
                done[index] = _row_result(out, row, per_layer, per_frame)
        if progress_file is not None and (count % SAVE_EVERY == 0):
            save_progress(progress_file, fingerprint, done)
    return [done[i] for i in range(len(paths))]


def _row_result(out, row, per_layer, per_frame):
    result = {"embeddings": out.pooler_output[row].float().cpu().numpy()}
    if per_layer:
        for layer, pooled in enumerate(out.pooled_hidden_states):
            result[f"layer_{layer}"] = pooled[row].float().cpu().numpy()
    if per_frame:
        frames = out.last_hidden_state[row]
        if out.frame_mask is not None:
            frames = frames[out.frame_mask[row]]
        result["frames"] = frames.float().cpu().numpy()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fusion-embed", description=__doc__.strip().splitlines()[0])
    parser.add_argument("model", nargs="?", help="converted model folder or Hub id")
    parser.add_argument("audio", help="folder of audio files, or an audiofolder dataset (metadata.csv)")
    parser.add_argument("--output", required=True, help="output .npz file")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="files per batch (as fusion-eval's); files run shortest first, so a batch holds similar "
                             "lengths (default: 32)")
    parser.add_argument("--per-layer", action="store_true", help="also store every layer's pooled embedding")
    parser.add_argument("--per-frame", action="store_true", help="also store per-frame fused features")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--memory-budget-gib", type=float, default=DEFAULT_MEMORY_BUDGET_GIB,
                        help="a file whose whole-clip pass would need more memory (GiB) runs in overlapping chunks; "
                             "inf: every file whole (default %(default)s)")
    parser.add_argument("--chunk-length-s", type=float, default=None,
                        help="length (seconds) of the chunks of a file over the budget (default: as long as the budget "
                             "holds; for encoder fusion, files longer than this, default 30, run in chunks); 0: never")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip files that cannot be decoded or are too short, and list them, instead of stopping")
    parser.add_argument("--random-weights-demo", metavar="BACKBONE",
                        help="no pretrained model: build BACKBONE (e.g. cnn14) with random weights to try the tool")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    quiet_transformers()
    if not args.model and not args.random_weights_demo:
        parser.error("give MODEL (a converted folder or Hub id), or --random-weights-demo BACKBONE")
    try:
        model, extractor = load_model(args.model, args.random_weights_demo)  # a missing model fails first
        paths, metadata = list_audio(args.audio)
        model.to(args.device)
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        progress_file = output.with_name(output.name + ".partial.npz")
        fingerprint = run_fingerprint(args.model, paths, args)
        results = embed_folder(model, extractor, paths, args.batch_size, args.per_layer, args.per_frame,
                               progress_file, fingerprint, args.skip_bad, args.chunk_length_s,
                               args.memory_budget_gib)
    except ValueError as error:
        sys.exit(f"error: {error}")
    kept = [i for i, r in enumerate(results) if "skipped" not in r]
    if not kept:
        sys.exit(f"error: none of the {len(paths)} files under {args.audio} could be embedded (all skipped)")
    arrays = {key: np.stack([results[i][key] for i in kept]) for key in results[kept[0]] if key != "frames"}
    if args.per_frame:
        arrays["frames"] = np.array([results[i]["frames"] for i in kept], dtype=object)
    arrays["files"] = np.array([str(paths[i]) for i in kept])
    for column in (metadata[0] if metadata else {}):
        if column != "file_name":
            arrays[f"meta_{column}"] = np.array([metadata[i][column] for i in kept])
    arrays["resampler"] = np.array(resampler_tag())
    skipped = [i for i, r in enumerate(results) if "skipped" in r]
    if args.skip_bad:
        arrays["skipped"] = np.array([str(paths[i]) for i in skipped], dtype=str)
        arrays["skipped_errors"] = np.array([results[i]["skipped"] for i in skipped], dtype=str)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(temporary, output)
    progress_file.unlink(missing_ok=True)
    print(f"wrote {output}: {len(kept)} clips, embeddings {arrays['embeddings'].shape}")
    if skipped:
        print(f"skipped {len(skipped)} file(s) (listed in the output's `skipped`):")
        for i in skipped:
            print(f"  {paths[i]}: {results[i]['skipped']}")


if __name__ == "__main__":
    main()
