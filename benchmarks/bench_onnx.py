"""onnxruntime (CPU) vs torch clips/s per backbone, the same graph input and thread count, plus the float16
headroom of each model's activations on the same real clips.

    python benchmarks/bench_onnx.py [--backbones cnn14-16k ...] [--clips 8] [--seconds 4] [--threads 1]
        [--repeats 3] [--output benchmarks/results/onnx_cpu.md]

Full-size models: the real checkpoints for EfficientAT mn04 and YAMNet (../shared/weights), random weights
with BatchNorm statistics away from 0 / 1 for CNN14 16/32 kHz, VGGish, AST (base, 12 x 768) and
wav2vec2-base-sized encoder fusion. Each is exported with `modeling_fusion.export.onnx.export_onnx` (dynamic
length where the backbone allows, else at --seconds) and timed on one batch of real UrbanSound8K clips cut to
--seconds: torch = model(features, output_hidden_states=True) under no_grad; onnxruntime = the graph on the
same features. Features are computed once, outside the timing. Best of --repeats after a warm-up.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from test_export_onnx import scaled_batch_norms  # noqa: E402

from modeling_fusion import (AstFusionConfig, AstFusionModel, Cnn14FeatureExtractor, Cnn14FusionConfig,  # noqa: E402
                             Cnn14FusionModel, EncoderFusionConfig, EncoderFusionModel, VGGishFeatureExtractor,
                             VGGishFusionConfig, VGGishFusionModel)
from modeling_fusion.audio_input import load_audio  # noqa: E402
from modeling_fusion.convert.save_folder import save_model_folder  # noqa: E402
from modeling_fusion.export.onnx import export_onnx, load_folder, peak_activation, relative_difference  # noqa: E402
from modeling_fusion.feature_extraction_ast import AstFusionFeatureExtractor  # noqa: E402

SHARED = REPO.parent / "shared"
BACKBONES = ("cnn14-16k", "cnn14-32k", "efficientat-mn04", "yamnet", "vggish", "ast", "wav2vec2-base")
CNN14_32K = dict(sampling_rate=32000, n_fft=1024, hop_length=320, f_max=14000.0)


def build_folder(name, folder):
    """A full-size model folder for backbone `name`."""
    torch.manual_seed(0)
    if name.startswith("cnn14"):
        model = scaled_batch_norms(Cnn14FusionModel(Cnn14FusionConfig()), seed=1)
        return save_model_folder(model, Cnn14FeatureExtractor(**(CNN14_32K if name == "cnn14-32k" else {})), folder)
    if name == "efficientat-mn04":
        from modeling_fusion.hub.publish import main as hub

        hub(["build", "efficientat-mn04-as-fusion-12-14", "--checkpoint", str(SHARED / "weights/efficientat_mn04_as.pt"),
             "--labels", str(SHARED / "weights/audioset_labels.csv"), "--output", str(folder)])
        return folder
    if name == "yamnet":
        from modeling_fusion.convert import main as convert

        convert(["yamnet", "--checkpoint", str(SHARED / "weights/yamnet.tflite"), "--output", str(folder)])
        return folder
    if name == "vggish":
        return save_model_folder(VGGishFusionModel(VGGishFusionConfig()).eval(), VGGishFeatureExtractor(), folder)
    if name == "ast":
        model = AstFusionModel(AstFusionConfig()).eval()
        return save_model_folder(model, AstFusionFeatureExtractor(), folder)
    if name == "wav2vec2-base":
        from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

        encoder = Wav2Vec2Model(Wav2Vec2Config()).eval()
        model = EncoderFusionModel(EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=[6, 12]),
                                   encoder=encoder).eval()
        return save_model_folder(model, Wav2Vec2FeatureExtractor(return_attention_mask=True), folder)
    raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")


def real_clips(count, seconds, rate):
    """`count` UrbanSound8K clips resampled to `rate`, cut or zero-padded to `seconds`."""
    files = sorted((SHARED / "data/urbansound8k_3folds/audio/fold1").glob("*.ogg"))[:count]
    samples = round(seconds * rate)
    return [np.pad(a, (0, max(0, samples - len(a))))[:samples] for a in (load_audio(str(f), rate) for f in files)]


def best_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(name, args, workdir):
    import onnxruntime

    folder = build_folder(name, workdir / name)
    model, extractor = load_folder(folder)
    fixed = model.config.model_type in ("ast-fusion", "yamnet-fusion")
    output = workdir / f"{name}-onnx"
    started = time.perf_counter()
    manifest = export_onnx(folder, output, dynamic_length=not fixed, seconds=args.seconds)
    export_s = time.perf_counter() - started
    input_name = manifest["input"]["name"]
    clips = real_clips(args.clips, args.seconds, extractor.sampling_rate)
    features = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt")[input_name].float()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    session = onnxruntime.InferenceSession(str(output / "model.onnx"), options, providers=["CPUExecutionProvider"])
    feed = {input_name: features.numpy()}

    def run_torch():
        with torch.no_grad():
            return model(**{input_name: features}, output_hidden_states=True).pooler_output

    torch_s = best_time(run_torch, args.repeats)
    onnx_s = best_time(lambda: session.run(["pooler_output"], feed), args.repeats)
    difference = relative_difference(session.run(["pooler_output"], feed)[0], run_torch())
    peak = peak_activation(model, features)
    row = {"backbone": name, "input": "x".join(map(str, features.shape)), "export_s": export_s,
           "torch": args.clips / torch_s, "onnx": args.clips / onnx_s, "difference": difference, "peak": peak,
           "input_peak": float(features.abs().max())}
    if args.fp16:  # the float16 graph on the same clips against float32 torch
        export_onnx(folder, workdir / f"{name}-fp16", dynamic_length=not fixed, seconds=args.seconds, fp16=True)
        half = onnxruntime.InferenceSession(str(workdir / f"{name}-fp16" / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        outputs = half.run(None, feed)
        row["fp16_difference"] = relative_difference(outputs[0], run_torch())
        row["fp16_finite"] = all(np.isfinite(o).all() for o in outputs if o.dtype != bool)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--clips", type=int, default=8, help="clips per batch (default 8)")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default 3)")
    parser.add_argument("--fp16", action="store_true", help="also export float16 graphs and compare them")
    parser.add_argument("--output", type=Path, default=None, help="markdown file to write the table to")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.backbones:
            rows.append(bench(name, args, Path(workdir)))
            row = rows[-1]
            print(f"{name}: torch {row['torch']:.2f} clips/s, onnxruntime {row['onnx']:.2f} clips/s "
                  f"({row['onnx'] / row['torch']:.2f}x), pooler relative difference {row['difference']:.1e}, "
                  f"peak |activation| {row['peak']['max_abs']:.3g} ({row['peak']['module']})", flush=True)
    lines = [f"{args.clips} real UrbanSound8K clips of {args.seconds:g} s per batch, {args.threads} thread(s) for "
             f"both, best of {args.repeats}; torch {torch.__version__}.", "",
             "| backbone | graph input | torch clips/s | onnxruntime clips/s | ratio | pooler rel. diff | "
             "export s |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['backbone']} | {row['input']} | {row['torch']:.2f} | {row['onnx']:.2f} | "
                     f"{row['onnx'] / row['torch']:.2f} | {row['difference']:.1e} | {row['export_s']:.0f} |")
    lines += ["", "float16: the largest |activation| of any submodule (float32 run, same clips) against 65504, "
              "the largest |input value|" + (", and the float16 graph's pooler_output against float32 torch" if args.fp16
                                             else "") + ":", "",
              "| backbone | peak abs activation (module) | headroom 65504 / peak | peak abs input |"
              + (" fp16 graph rel. diff | all finite |" if args.fp16 else ""),
              "|---|---|---|---|" + ("---|---|" if args.fp16 else "")]
    for row in rows:
        lines.append(f"| {row['backbone']} | {row['peak']['max_abs']:.3g} (`{row['peak']['module']}`) | "
                     f"{row['peak']['headroom']:.3g} | {row['input_peak']:.3g} |"
                     + (f" {row['fp16_difference']:.1e} | {row['fp16_finite']} |" if args.fp16 else ""))
    print("\n".join(lines))
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
