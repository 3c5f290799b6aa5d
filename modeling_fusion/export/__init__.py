"""Export model folders for runtimes outside PyTorch.

    python -m modeling_fusion.export onnx MODEL_DIR OUTPUT_DIR [--opset N] [--dynamic-length] [--fp16]

Needs the `export` extra (`pip install -e ".[export]"`: onnx, onnxscript, onnxruntime). This subpackage
never ships in a model folder.
"""

import argparse
import logging
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m modeling_fusion.export", description=__doc__.strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    formats = parser.add_subparsers(dest="format", required=True)
    onnx = formats.add_parser("onnx", help="an ONNX graph from the model's input to its clip, frame and "
                                           "per-layer embeddings, checked against torch with onnxruntime")
    onnx.add_argument("model_dir", help="a model folder (python -m modeling_fusion.hub build / convert)")
    onnx.add_argument("output_dir", help="folder to write: model.onnx, manifest.json, the feature extractor")
    onnx.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18, the one the tests use)")
    onnx.add_argument("--dynamic-length", action="store_true",
                      help="let the clip length vary between calls (CNN14, EfficientAT, VGGish, wav2vec2-style encoders; AST and "
                           "YAMNet refuse it, naming why; Whisper and CLAP inputs have one length)")
    onnx.add_argument("--seconds", type=float, default=None,
                      help="the clip length the graph is traced at, and without --dynamic-length the only "
                           "length it takes (default: 10.24 s for AST, 2 s for VGGish, the encoder's own for "
                           "Whisper/CLAP, else 1 s)")
    onnx.add_argument("--fp16", action="store_true",
                      help="float16 weights and activations (input and outputs stay float32); check the "
                           "overflow report in manifest.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx", "torch.export"):  # their INFO lines (dozens per graph:
        logging.getLogger(noisy).setLevel(logging.WARNING)                # initializer merges) say nothing to a user
    from ..cli.quiet import quiet_transformers
    from .onnx import export_onnx

    quiet_transformers()

    try:
        manifest = export_onnx(args.model_dir, args.output_dir, opset=args.opset, dynamic_length=args.dynamic_length,
                               seconds=args.seconds, fp16=args.fp16)
    except (ValueError, FileNotFoundError, ImportError) as error:
        sys.exit(f"error: {error}")
    check = manifest["check"]
    print(f"wrote {args.output_dir}/model.onnx: onnxruntime vs torch on the traced clip, pooler_output max "
          f"relative difference {check['pooler_output_max_relative']:.2e}")
