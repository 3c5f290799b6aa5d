"""The Python steps of benchmarks/gpu_check.sh: model parity on a device, extraction for the 1- vs 2-process
comparison, and clips/s for the model alone and end to end. Every step also runs on the CPU (smoke mode).

    python benchmarks/gpu_check.py parity --device cuda
    python benchmarks/gpu_check.py extract --device cuda --workdir W --output emb.npz   (under accelerate launch)
    python benchmarks/gpu_check.py throughput --device cuda --precision bf16 --workdir W --output rows.md [--json F]
    python benchmarks/gpu_check.py loop --device cuda --workdir W --output rows.md

Models have random weights (full-size default configs). Clips: synthetic noise of `--seconds` s for CNN14 and
AST; real Speech Commands v2 test clips (1 s, decoded and resampled to 32 kHz) for EfficientAT.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from modeling_fusion import BACKBONES
from modeling_fusion.convert.save_folder import save_model_folder

# Parity bounds: max |device - CPU| / max |CPU| of the clip embeddings (pooler_output). fp32 on a GPU runs
# cuDNN convolutions in TF32 by default (10-bit mantissa), so it is not bitwise CPU; bf16 autocast keeps 8 bits.
FP32_BOUND, BF16_BOUND = 1e-2, 5e-2
SPCV2_CANDIDATES = ("../shared/data", "shared/data")


def spcv2_data_dir():
    """The folder holding speech_commands_v2_test ($FUSION_EVAL_DATA_DIR first)."""
    for candidate in (os.environ.get("FUSION_EVAL_DATA_DIR"), *SPCV2_CANDIDATES):
        if candidate and (Path(candidate) / "speech_commands_v2_test" / "metadata.csv").is_file():
            return str(Path(candidate).resolve())
    raise ValueError(f"speech_commands_v2_test not found in $FUSION_EVAL_DATA_DIR or {SPCV2_CANDIDATES}")


def random_model(backbone):
    """(base model, feature extractor) with random weights, seeded."""
    config_class, model_class, _, extractor_class = BACKBONES[backbone]
    torch.manual_seed(0)
    return model_class(config_class()).eval(), extractor_class()


def random_folder(backbone, folder):
    config_class, _, head_class, extractor_class = BACKBONES[backbone]
    if not (Path(folder) / "config.json").is_file():
        torch.manual_seed(0)
        save_model_folder(head_class(config_class()).eval(), extractor_class(), folder)
    return str(folder)


def parity(device):
    """Each backbone: embeddings with the torch front end + model on `device` (fp32, bf16 autocast) vs the
    numpy front end + model on the CPU in fp32. Returns markdown rows; raises AssertionError past a bound."""
    rows, failures = [], []
    for backbone in ("cnn14", "efficientat", "ast", "vggish"):
        model, extractor = random_model(backbone)
        rate = extractor.sampling_rate
        rng = np.random.default_rng(0)
        clips = [(0.3 * rng.standard_normal(int(rate * seconds))).astype(np.float32) for seconds in (3.0, 1.5, 2.2)]
        with torch.no_grad():
            reference = model(**extractor(clips, sampling_rate=rate, return_tensors="pt")).pooler_output
            model.to(device)
            features = extractor(clips, sampling_rate=rate, return_tensors="pt", device=device)
            scale = reference.abs().max().item()
            for precision, bound in (("fp32", FP32_BOUND), ("bf16", BF16_BOUND)):
                with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    ours = model(**features).pooler_output.float().cpu()
                error = (ours - reference).abs().max().item() / scale
                rows.append(f"| {backbone} | {precision} | {error:.2e} | {bound:.0e} | {'ok' if error <= bound else 'FAIL'} |")
                if error > bound:
                    failures.append(rows[-1])
        print(rows[-2], rows[-1], sep="\n", flush=True)
    header = ["| backbone | precision | max abs diff / max abs (embedding) | bound | |", "|---|---|---|---|---|"]
    return header + rows, failures


def noise_folder(folder, count, seconds, rate=16000):
    """An audiofolder of `count` noise clips (16-bit WAV), made once."""
    folder = Path(folder)
    if not (folder / "metadata.csv").is_file():
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        lines = ["file_name,label,split"]
        for index in range(count):
            sf.write(folder / f"audio/{index}.wav", 0.1 * rng.standard_normal(int(rate * seconds)), rate, subtype="PCM_16")
            lines.append(f"audio/{index}.wav,{index % 2},train")
        (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    return str(folder)


def table_for(backbone, clips, seconds, workdir, rate):
    """(TaskTable, unit samples): SPCV2 test clips for EfficientAT, else synthetic noise clips."""
    from fusion_eval.datasource import load_table
    from fusion_eval.tasks import resolve_task

    if backbone == "efficientat":
        table = load_table(resolve_task("spcv2-test-folds"), spcv2_data_dir(), rate)
        return table, rate, min(clips, len(table))
    folder = noise_folder(Path(workdir) / f"noise-{seconds:g}s-{clips}", clips, seconds)
    table = load_table(resolve_task(folder, unit_sec=seconds), workdir, rate)
    return table, int(rate * seconds), clips


def run_extract(accelerator, backbone, clips, seconds, batch_size, workdir, cache_dir, repeat=1, audio_store=None):
    """fusion-eval's extraction of `clips` files, each read `repeat` times, into `cache_dir` (decoding them, or
    from the prepared-audio store under `audio_store`, filled first if needed); returns (embedder, cache, seconds
    taken, table, samples per clip)."""
    from fusion_eval.cache import ViewCache
    from fusion_eval.extract import default_num_workers, extract
    from fusion_eval.representations import Embedder

    embedder = Embedder(random_folder(backbone, Path(workdir) / f"{backbone}-model"))
    embedder.model.to(accelerator.device)
    table, unit, count = table_for(backbone, clips, seconds, workdir, embedder.sampling_rate)
    cache = ViewCache(cache_dir, np.tile(np.arange(count), repeat), 512, {})
    accelerator.wait_for_everyone()
    started = time.perf_counter()
    extract(accelerator, embedder, table, cache, "start", unit, 42, batch_size=batch_size,
            num_workers=default_num_workers(), desc=f"{backbone} extract", audio_store=audio_store)
    return embedder, cache, time.perf_counter() - started, table, unit


def decode_alone(table, rows, unit, batch_size, pin_memory):
    """clips/s of fusion-eval's DataLoader alone over table rows `rows` (workers decode, resample and fix lengths;
    collate; pin)."""
    from fusion_eval.clips import ClipDataset, keep_batch
    from fusion_eval.extract import default_num_workers

    loader = torch.utils.data.DataLoader(ClipDataset(table, rows, "start", unit, 42), batch_size=batch_size,
                                         num_workers=default_num_workers(), collate_fn=keep_batch,
                                         pin_memory=pin_memory)
    started = time.perf_counter()
    clips = sum(len(batch["rows"]) for batch in loader)
    return clips / (time.perf_counter() - started)


def model_alone(embedder, device, precision, unit, batch_size, batches):
    """clips/s of `embedder.embed` (the model forward and the representations fusion-eval stores) on `device`,
    on one batch of features computed there once."""
    rng = np.random.default_rng(1)
    waves = [(0.1 * rng.standard_normal(unit)).astype(np.float32) for _ in range(batch_size)]
    features = embedder.feature_extractor(waves, sampling_rate=embedder.sampling_rate, return_tensors="pt",
                                          device=device)
    synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for _ in range(2):  # warm-up
            embedder.embed(features)
        synchronize()
        started = time.perf_counter()
        for _ in range(batches):
            embedder.embed(features)
        synchronize()
    return batches * batch_size / (time.perf_counter() - started)


def loop_check(device, workdir, clips, batch_size=32):
    """fusion-eval's loop on `device` (side-stream uploads, checks in the workers, non-blocking copies back), with
    and without the prepared-audio store, vs the same batches embedded directly (no loader, blocking copies):
    max |difference| / max |value| per representation; expected 0 (same batches, same kernels). Markdown rows."""
    from accelerate import Accelerator

    from fusion_eval.clips import ClipDataset, batch_to_float

    accelerator = Accelerator(cpu=device == "cpu")
    work = Path(workdir)
    rows, failures = [], []
    for store in (None, work / "loop-audio", work / "loop-audio"):  # without, filling, then reading the store
        embedder, cache, _, table, unit = run_extract(accelerator, "efficientat", clips, 1.0, batch_size, work,
                                                      work / f"loop-{time.time_ns()}", audio_store=store)
        dataset = ClipDataset(table, cache.rows, "start", unit, 42)
        reference = {rep.key: [] for rep in embedder.representations}
        with torch.no_grad():
            for start in range(0, len(cache.rows), batch_size):
                batch = dataset.__getitems__(list(range(start, min(start + batch_size, len(cache.rows)))))
                features = embedder.feature_extractor(batch_to_float(batch["waves"]).to(device),
                                                      sampling_rate=embedder.sampling_rate,
                                                      return_tensors="pt", device=device)
                for key, value in embedder.embed(features).items():
                    reference[key].append(value.float().cpu().numpy())
        worst = max(np.abs(cache.load(key) - np.concatenate(parts)).max() / np.abs(np.concatenate(parts)).max()
                    for key, parts in reference.items())
        where = "no store" if store is None else "store"
        rows.append(f"| {where} | {len(cache.rows)} | {worst:.1e} | {'ok' if worst <= 1e-6 else 'FAIL'} |")
        print(rows[-1], flush=True)
        if worst > 1e-6:
            failures.append(rows[-1])
    return ["| input | clips | max abs diff / max abs | |", "|---|---|---|---|"] + rows, failures


def append_json(path, section, row):
    """Add `row` to the list `section` of the JSON file at `path` (created if absent), atomically."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(section, []).append(row)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    temporary.replace(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("parity", "extract", "throughput", "loop"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--backbones", nargs="+", default=["cnn14", "ast", "efficientat"])
    parser.add_argument("--clips", type=int, default=512, help="clips per backbone (EfficientAT: SPCV2 clips)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length for CNN14 and AST")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", default="gpu_check_work")
    parser.add_argument("--repeat", type=int, default=1,
                        help="throughput: read each clip this many times, so that every DataLoader worker gets many "
                             "batches (throughput rather than start-up)")
    parser.add_argument("--output", help="markdown rows (parity, throughput, loop) or .npz embeddings (extract)")
    parser.add_argument("--json", help="throughput: also add each backbone's figures to this JSON file")
    args = parser.parse_args()
    from accelerate import Accelerator

    from fusion_eval.extract import default_num_workers

    if args.step == "loop":
        lines, failures = loop_check(args.device, args.workdir, args.clips)
        Path(args.output).write_text("\n".join(lines) + "\n")
        if failures:
            raise SystemExit("the extraction loop differs from the direct embedding:\n" + "\n".join(failures))
    elif args.step == "parity":
        lines, failures = parity(args.device)
        Path(args.output).write_text("\n".join(lines) + "\n")
        if failures:
            raise SystemExit("parity bounds exceeded:\n" + "\n".join(failures))
    elif args.step == "extract":  # run under `accelerate launch`; the main process writes the arrays
        accelerator = Accelerator(cpu=args.device == "cpu")
        backbone = args.backbones[0]
        embedder, cache, *_ = run_extract(accelerator, backbone, args.clips, args.seconds, args.batch_size,
                                         args.workdir, Path(args.workdir) / f"cache-{accelerator.num_processes}p")
        if accelerator.is_main_process:
            np.savez(args.output, **{rep.key: cache.load(rep.key) for rep in embedder.representations})
        accelerator.end_training()
    else:
        mixed = "bf16" if args.precision == "bf16" else "no"
        accelerator = Accelerator(cpu=args.device == "cpu", mixed_precision=mixed)
        lines = []
        for backbone in args.backbones:
            work = Path(args.workdir)
            run_extract(accelerator, backbone, args.batch_size, args.seconds, args.batch_size, work,  # warm-up
                        work / f"warm-{backbone}-{args.precision}-{time.time_ns()}")
            embedder, cache, taken, table, unit = run_extract(accelerator, backbone, args.clips, args.seconds, args.batch_size,
                                                 work, work / f"cache-{backbone}-{args.precision}-{time.time_ns()}",
                                                 args.repeat)
            clips = len(cache.rows)
            end_to_end = clips / taken
            alone = model_alone(embedder, accelerator.device, args.precision, unit, args.batch_size,
                                max(1, clips // args.batch_size))
            decoding = decode_alone(table, cache.rows, unit, args.batch_size, accelerator.device.type == "cuda")
            store = work / f"audio-{backbone}"  # filled by the first run, read by the second
            run_extract(accelerator, backbone, args.clips, args.seconds, args.batch_size, work,
                        work / f"fill-{backbone}-{args.precision}-{time.time_ns()}", args.repeat, store)
            *_, stored, _, _ = run_extract(accelerator, backbone, args.clips, args.seconds, args.batch_size, work,
                                           work / f"store-{backbone}-{args.precision}-{time.time_ns()}", args.repeat, store)
            clip_s = "SPCV2 1 s" if backbone == "efficientat" else f"noise {args.seconds:g} s"
            lines.append(f"| {backbone} | {clip_s} | {args.precision} | {clips} | {alone:.1f} | {end_to_end:.1f} | "
                         f"{end_to_end / alone:.2f} | {clips / stored:.1f} | {clips / stored / alone:.2f} | "
                         f"{decoding:.1f} ({default_num_workers()}) |")
            print(lines[-1], flush=True)
            if args.json:
                append_json(args.json, "throughput", {
                    "backbone": backbone, "precision": args.precision, "clips": clips, "model_alone": round(alone, 1),
                    "end_to_end": round(end_to_end, 1), "dataloader_alone": round(decoding, 1)})
                append_json(args.json, "store", {"backbone": backbone, "precision": args.precision, "clips": clips,
                                                 "end_to_end": round(clips / stored, 1)})
        with open(args.output, "a") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
