"""fusion-embed: clip embeddings for a folder of audio or an audiofolder dataset.

    fusion-embed MODEL AUDIO_DIR --output embeddings.npz [--per-layer] [--per-frame]

MODEL is a converted folder or a Hub id. The output .npz holds `embeddings` [N, D], `files`, any
metadata columns, and with --per-layer `layer_<l>` [N, D_l] (mean+max of each layer's frames).
Long runs save progress next to the output and resume where they stopped.
"""

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .audio_files import list_audio, read_audio

logger = logging.getLogger("fusion-embed")
SAVE_EVERY = 20  # batches between progress saves


def load_model(model_id, random_weights_demo=None):
    """(model, feature_extractor) from a folder / Hub id, or random weights for a named backbone."""
    from transformers import AutoFeatureExtractor, AutoModel

    if random_weights_demo:
        from . import BACKBONES

        config_class, model_class, _, extractor_class = BACKBONES[random_weights_demo]
        logger.warning(
            f"RANDOM-WEIGHTS DEMO: {random_weights_demo} is built with random weights. The embeddings only "
            "exercise the pipeline and carry no pretrained knowledge."
        )
        torch.manual_seed(0)
        return model_class(config_class()).eval(), extractor_class()
    try:
        model = AutoModel.from_pretrained(model_id, trust_remote_code=True).eval()
        extractor = AutoFeatureExtractor.from_pretrained(model_id, trust_remote_code=True)
    except OSError as error:
        raise SystemExit(
            f"error: no pretrained weights for {model_id!r} could be loaded ({error}).\n"
            "Convert a published checkpoint into a folder first, e.g.\n"
            "  python -m modeling_fusion.convert cnn14 --checkpoint Cnn14_16k_mAP=0.438.pth --output cnn14-16k\n"
            "or, only to try the pipeline, pass --random-weights-demo BACKBONE (embeddings will be meaningless)."
        ) from None
    return model, extractor


def run_fingerprint(model_id, files, args):
    text = json.dumps([model_id, args.random_weights_demo, args.per_layer, args.per_frame, [str(f) for f in files]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def embed_folder(model, extractor, paths, batch_size, per_layer, per_frame, progress_file=None, fingerprint=None):
    """Embed every file; returns a dict of arrays. Progress is saved to `progress_file` and resumed."""
    done = {}
    if progress_file is not None and progress_file.exists():
        saved = np.load(progress_file, allow_pickle=True)
        if str(saved["fingerprint"]) == fingerprint:
            done = saved["results"].item()
            logger.info(f"resuming: {len(done)} of {len(paths)} files already embedded")
    device = next(model.parameters()).device
    todo = [i for i in range(len(paths)) if i not in done]
    batches = [todo[start:start + batch_size] for start in range(0, len(todo), batch_size)]
    for count, batch in enumerate(tqdm(batches, desc="embedding", unit="batch"), 1):
        clips = [read_audio(paths[i], extractor.sampling_rate) for i in batch]
        features = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt").to(device)
        with torch.no_grad():
            out = model(**features, output_hidden_states=per_layer)
        for row, index in enumerate(batch):
            result = {"embeddings": out.pooler_output[row].float().cpu().numpy()}
            mask = None if out.frame_mask is None else out.frame_mask[row:row + 1]
            if per_layer:
                for layer, pooled in enumerate(out.pooled_hidden_states):
                    result[f"layer_{layer}"] = pooled[row].float().cpu().numpy()
            if per_frame:
                frames = out.last_hidden_state[row] if mask is None else out.last_hidden_state[row][mask[0]]
                result["frames"] = frames.float().cpu().numpy()
            done[index] = result
        if progress_file is not None and (count % SAVE_EVERY == 0):
            np.savez(progress_file, fingerprint=fingerprint, results=np.array(done, dtype=object))
    return [done[i] for i in range(len(paths))]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fusion-embed", description=__doc__.strip().splitlines()[0])
    parser.add_argument("model", nargs="?", help="converted model folder or Hub id")
    parser.add_argument("audio", help="folder of audio files, or an audiofolder dataset (metadata.csv)")
    parser.add_argument("--output", required=True, help="output .npz file")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--per-layer", action="store_true", help="also store every layer's pooled embedding")
    parser.add_argument("--per-frame", action="store_true", help="also store per-frame fused features")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--random-weights-demo", metavar="BACKBONE",
                        help="no pretrained model: build BACKBONE (e.g. cnn14) with random weights to try the tool")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not args.model and not args.random_weights_demo:
        parser.error("give MODEL (a converted folder or Hub id), or --random-weights-demo BACKBONE")
    try:
        paths, metadata = list_audio(args.audio)
        model, extractor = load_model(args.model, args.random_weights_demo)
        model.to(args.device)
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        progress_file = output.with_name(output.name + ".partial.npz")
        fingerprint = run_fingerprint(args.model, paths, args)
        results = embed_folder(model, extractor, paths, args.batch_size, args.per_layer, args.per_frame,
                               progress_file, fingerprint)
    except ValueError as error:
        sys.exit(f"error: {error}")
    arrays = {key: np.stack([r[key] for r in results]) for key in results[0] if key != "frames"}
    if args.per_frame:
        arrays["frames"] = np.array([r["frames"] for r in results], dtype=object)
    arrays["files"] = np.array([str(p) for p in paths])
    for column in (metadata[0] if metadata else {}):
        if column != "file_name":
            arrays[f"meta_{column}"] = np.array([row[column] for row in metadata])
    np.savez(output, **arrays)
    progress_file.unlink(missing_ok=True)
    print(f"wrote {output}: {len(paths)} clips, embeddings {arrays['embeddings'].shape}")


if __name__ == "__main__":
    main()
