"""Peak memory of long clips (1, 5, 20 minutes) per backbone: whole-clip pass vs the chunked path.

    python benchmarks/bench_long_clips.py [--minutes 1 5 20] [--hear-minutes 10] [--backbones cnn14 ...]
        [--output benchmarks/results/long_clips]

Full-size models with random weights (memory and time do not depend on the weights), CPU, one thread,
one clip of noise at the model's rate (--threads N for more). Modes:
  whole    the feature extractor and the model on the whole clip (`model(**extractor(audio))`);
           not run where it would take more than WHOLE_LIMIT_GIB on this shared machine (AST beyond 1 minute:
           attention over 12 x 10 patches per second is quadratic in time; others when 4 x the 5-minute figure is more).
  chunked  `chunking.embed_long_clip` with its defaults (whole within the 1 GiB memory budget, chunks as long as
           the budget holds beyond it), per-frame features returned.
  pipeline the "audio-embedding" pipeline with its defaults (clip embedding only).
  hear     `hear.get_timestamp_embeddings` on a [1, samples] batch (frames + timestamps), default options.
Each measurement runs in a fresh process: peak RSS growth = VmHWM - VmRSS after the model and the audio
exist (VmHWM reset through /proc/self/clear_refs), so the returned frames count, the audio does not.
Writes OUTPUT.json and OUTPUT.md.

    python benchmarks/bench_long_clips.py --differences [--seconds 30 --chunk-length-s 10]

instead compares chunked (forced: memory budget 0) and whole-clip frames and clip embeddings per backbone (max
relative difference, frame cosine, wall time of each pass; full-size random models with torch's default layer init
and random BatchNorm statistics, noise at 0.1 RMS) and writes OUTPUT_differences.json/.md. With `--model FOLDER`
(one backbone: real weights) and `--audio-dir DIR` (its audio files, sorted, decoded at the model's rate and joined
to `--seconds`) it measures a trained model on real audio and adds its row to OUTPUT_differences_real.json/.md:
random EfficientAT weights shrink activations to ~1e-16, where squeeze-excitation gates are constant and chunking
looks exact when it is not. `--chunk-length-s` defaults to the longest chunk the default budget holds.
"""

import argparse
import ctypes
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

BACKBONES = ("cnn14", "efficientat", "vggish", "ast", "yamnet")
TARGET_GIB = 2.0
WHOLE_LIMIT_GIB = 3.0


def _kib(field):
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def worker(backbone, mode, minutes, threads):
    import numpy as np
    import torch

    from modeling_fusion import BACKBONES as CLASSES
    from modeling_fusion.chunking import embed_long_clip

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config_class, model_class, _, extractor_class = CLASSES[backbone]
    model, extractor = model_class(config_class()).eval(), extractor_class()
    rate = extractor.sampling_rate
    audio = (np.random.default_rng(0).standard_normal(int(minutes * 60 * rate)) * 0.1).astype(np.float32)
    if mode == "whole":
        def run():
            inputs = extractor(audio, sampling_rate=rate, return_tensors="pt")
            with torch.no_grad():
                return model(**inputs).last_hidden_state.shape
    elif mode == "chunked":
        def run():
            return embed_long_clip(model, extractor, audio).last_hidden_state.shape
    elif mode == "pipeline":
        from modeling_fusion.pipeline_audio_embedding import AudioEmbeddingPipeline

        pipe = AudioEmbeddingPipeline(model=model, feature_extractor=extractor)

        def run():
            return pipe(audio)["embedding"].shape
    else:
        from modeling_fusion.harness.hear import HearModel, get_timestamp_embeddings

        hear_model = HearModel(model, extractor)
        clip = torch.from_numpy(audio)[None]

        def run():
            return get_timestamp_embeddings(clip, hear_model)[0].shape
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    baseline = _kib("VmRSS")
    start = time.perf_counter()
    shape = run()
    seconds = time.perf_counter() - start
    print(json.dumps({"backbone": backbone, "mode": mode, "minutes": minutes, "threads": threads, "peak_growth_mib":
                      round((_kib("VmHWM") - baseline) / 1024, 1), "seconds": round(seconds, 1),
                      "output_shape": list(shape)}))


def joined_audio(folder, seconds, rate):
    """Audio files under `folder` (sorted), each decoded and resampled to `rate`, joined to `seconds` s."""
    import numpy as np

    from modeling_fusion.audio_input import load_audio

    parts, total = [], 0
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3")):
        parts.append(load_audio(path, rate))
        total += len(parts[-1])
        if total >= seconds * rate:
            return np.concatenate(parts)[: int(seconds * rate)]
    raise ValueError(f"{folder} holds less than {seconds} s of audio")


def differences(backbones, seconds, chunk_s, output, model_dir=None, audio_dir=None):
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from chunking_testing import TINY, noise, tiny_model

    from modeling_fusion import BACKBONES as CLASSES
    from modeling_fusion.chunking import chunk_length, embed_long_clip
    from modeling_fusion.clip_gates import gate_modules
    from modeling_fusion.cli.model_source import load_pretrained

    torch.set_num_threads(1)
    rows = []
    for backbone in backbones:
        if model_dir:
            model, extractor = load_pretrained(model_dir, "")
        else:
            config_class = CLASSES[backbone][0]
            defaults = {key: getattr(config_class(), key) for key in TINY[backbone]}  # full size, tests' random init
            model, extractor = tiny_model(backbone, **defaults)
        rate = extractor.sampling_rate
        audio = joined_audio(audio_dir, seconds, rate) if audio_dir else noise(seconds, rate, seed=1)
        chunk = chunk_s or chunk_length(model, extractor, len(audio))
        if chunk is None:
            raise SystemExit(f"{seconds:g} s fit the default memory budget (one whole pass): give --chunk-length-s")
        start = time.perf_counter()
        whole = embed_long_clip(model, extractor, audio, memory_budget_gib=None, output_hidden_states=True)
        whole_s = time.perf_counter() - start
        start = time.perf_counter()
        chunked = embed_long_clip(model, extractor, audio, chunk, output_hidden_states=True, memory_budget_gib=0)
        chunked_s = time.perf_counter() - start

        def gap(a, b):
            return float((a - b).abs().max() / a.abs().max())

        frames = torch.nn.functional.cosine_similarity(whole.last_hidden_state[0], chunked.last_hidden_state[0], dim=-1)
        spec = model.config.chunk_spec(extractor)
        rows.append({
            "backbone": backbone, "model": Path(model_dir).name if model_dir else "random",
            "audio": Path(audio_dir).name if audio_dir else "noise", "seconds": seconds, "chunk_s": round(chunk, 2),
            "chunks": -(-len(audio) // int(chunk * rate)), "exact": spec.exact or bool(gate_modules(model)),
            "frames_max_rel": gap(whole.last_hidden_state, chunked.last_hidden_state),
            "frame_cosine_min": float(frames.min()), "clip_max_rel": gap(whole.pooler_output, chunked.pooler_output),
            "layers_max_rel": max(gap(a, b) for a, b in zip(whole.pooled_hidden_states, chunked.pooled_hidden_states)
                                  if float(a.abs().max()) > 0),
            "clip_cosine": float(torch.nn.functional.cosine_similarity(whole.pooler_output, chunked.pooler_output)),
            "whole_s": round(whole_s, 1), "chunked_s": round(chunked_s, 1)})
        print(json.dumps(rows[-1]), flush=True)
    path = Path(f"{output}_differences{'_real' if model_dir else ''}.json")
    old = json.loads(path.read_text()) if path.exists() else []
    keys = {(r["model"], r["audio"], r["seconds"], r["chunk_s"]) for r in rows}
    merged = [r for r in old if (r["model"], r["audio"], r["seconds"], r["chunk_s"]) not in keys] + rows
    path.write_text(json.dumps(merged, indent=1))
    path.with_suffix(".md").write_text(differences_table(merged, bool(model_dir)))


def differences_table(rows, real):
    what = "real weights on real audio (files sorted and joined)" if real else "noise, full-size random models"
    lines = [f"Chunked vs whole-clip pass, {what}: `benchmarks/bench_long_clips.py --differences` (one thread, shared "
             "2-core machine; seconds are wall time under load). Max relative = max |chunked - whole| / max |whole|; "
             "per-layer = the worst layer's clip embedding (output_hidden_states).", "",
             "| backbone | model | audio | clip s | chunk s | exact by design | frames max rel | frame cosine min | "
             "clip max rel | per-layer clip max rel | clip cosine | whole s | chunked s | chunked / whole |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backbone']} | {r['model']} | {r['audio']} | {r['seconds']:g} | {r['chunk_s']:g} | "
                     f"{'yes' if r['exact'] else 'no'} | {r['frames_max_rel']:.2g} | {r['frame_cosine_min']:.7f} | "
                     f"{r['clip_max_rel']:.2g} | {r['layers_max_rel']:.2g} | {r['clip_cosine']:.7f} | {r['whole_s']:g} | "
                     f"{r['chunked_s']:g} | {r['chunked_s'] / max(r['whole_s'], 1e-9):.2f} |")
    return "\n".join(lines) + "\n"


def measure(backbone, mode, minutes, threads):
    command = [sys.executable, __file__, "--worker", backbone, mode, str(minutes), "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return {"backbone": backbone, "mode": mode, "minutes": minutes, "error": result.stderr.strip()[-300:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def whole_skip(backbone, minutes, results):
    """None when the whole-clip path is run for this clip, else why not."""
    if backbone == "ast":
        return None if minutes <= 1 else "quadratic attention: too large to run here"
    five = [r for r in results if r["backbone"] == backbone and r["mode"] == "whole" and r["minutes"] == 5]
    if minutes <= 5:
        return None
    if five and "peak_growth_mib" in five[0] and 4 * five[0]["peak_growth_mib"] < min(
            WHOLE_LIMIT_GIB * 1024, psutil.virtual_memory().available / 2**21):
        return None
    return f"> {WHOLE_LIMIT_GIB:g} GiB expected (4 x the 5-minute figure)"


HEADER = ("Peak RSS growth of one clip (`benchmarks/bench_long_clips.py`): full-size random models, CPU (shared 2-core "
          "machine, timings under load), "
          "fresh process per row; whole = today's whole-clip path, chunked = `chunking.embed_long_clip` (30 s chunks, "
          f"frames returned), pipeline = audio-embedding pipeline, hear = `get_timestamp_embeddings`. Target after: "
          f"< {TARGET_GIB:g} GiB for 20 minutes.\n\n")


def table(results):
    lines = ["| backbone | mode | minutes | peak RSS growth (MiB) | seconds | threads | output |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['backbone']} | {r['mode']} | {r['minutes']} | failed: {r['error'][-80:]} | | | |")
        elif "skipped" in r:
            lines.append(f"| {r['backbone']} | {r['mode']} | {r['minutes']} | not run: {r['skipped']} | | | |")
        else:
            lines.append(f"| {r['backbone']} | {r['mode']} | {r['minutes']} | {r['peak_growth_mib']:.0f} | "
                         f"{r['seconds']:.0f} | {r.get('threads', 1)} | {r['output_shape']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("BACKBONE", "MODE", "MINUTES"), help=argparse.SUPPRESS)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--minutes", nargs="+", type=float, default=[1, 5, 20])
    parser.add_argument("--hear-minutes", type=float, default=10)
    parser.add_argument("--modes", nargs="+", default=["whole", "chunked", "pipeline", "hear"])
    parser.add_argument("--output", default="benchmarks/results/long_clips")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per measurement")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="only rewrite OUTPUT.json/.md from these results")
    parser.add_argument("--differences", action="store_true", help="compare chunked and whole-clip outputs")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length for --differences")
    parser.add_argument("--chunk-length-s", type=float, help="--differences: chunk length (default: the longest the "
                        "default memory budget holds; needed when the clip fits it)")
    parser.add_argument("--model", help="--differences: a model folder with real weights (one backbone)")
    parser.add_argument("--audio-dir", help="--differences: real audio files to join, instead of noise")
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], args.worker[1], float(args.worker[2]), args.threads)
    if args.differences:
        if args.model and len(args.backbones) != 1:
            parser.error("--model needs exactly one --backbones entry (the model's)")
        return differences(args.backbones, args.seconds, args.chunk_length_s, args.output, args.model, args.audio_dir)
    results = []
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        results = [r for path in args.merge for r in json.loads(Path(path).read_text())]
        output.with_suffix(".json").write_text(json.dumps(results, indent=1))
        output.with_suffix(".md").write_text(HEADER + table(results) + "\n")
        return print(table(results))
    for backbone in args.backbones:
        for mode in args.modes:
            for minutes in ([args.hear_minutes] if mode == "hear" else args.minutes):
                skip = whole_skip(backbone, minutes, results) if mode == "whole" else None
                if skip:
                    result = {"backbone": backbone, "mode": mode, "minutes": minutes, "skipped": skip}
                else:
                    result = measure(backbone, mode, minutes, args.threads)
                results.append(result)
                print(json.dumps(result), flush=True)
                output.with_suffix(".json").write_text(json.dumps(results, indent=1))
                output.with_suffix(".md").write_text(HEADER + table(results) + "\n")
    over = [r for r in results if r.get("mode") != "whole" and r.get("peak_growth_mib", 0) > TARGET_GIB * 1024]
    print(table(results))
    print(f"chunked/pipeline/hear runs over {TARGET_GIB} GiB: {len(over)}")


if __name__ == "__main__":
    main()
