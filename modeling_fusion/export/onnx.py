"""ONNX export of a model folder: one graph from the model's input (log-mel, patches, examples, or the encoder's
input) to its clip embedding, fused frames, frame mask and per-layer clip embeddings.

The graph is `torch.onnx.export(..., dynamo=True)` (torch.export + onnxscript; the TorchScript exporter is
deprecated) of the model's public forward, `model(inputs, output_hidden_states=True)`, with no attention
mask: every clip of a call has every frame, so a call takes clips of one length (the model runs each length
as its own sub-batch, `fusion.forward_by_length`; a padded batch would let padding into the graph's
convolutions). The feature extractor stays in Python: its config and remote code are copied beside the graph.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .graph_inputs import graph_input

GRAPH_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
MAIN_OUTPUTS = ("pooler_output", "last_hidden_state", "frame_mask")
FP16_MAX = 65504.0  # the largest finite float16


class FusionGraph(torch.nn.Module):
    """`model(**{input_name: inputs}, output_hidden_states=True)` as the tuple the graph returns:
    pooler_output [B, D], last_hidden_state [B, T, D], frame_mask [B, T] bool (all True: no call has padding),
    then pooled_hidden_states [B, D_l] for l = 0 ... num_layers. Outputs are float32 whatever the model's dtype."""

    def __init__(self, model, input_name):
        super().__init__()
        self.model = model
        self.input_name = input_name

    def forward(self, inputs):
        out = self.model(**{self.input_name: inputs}, output_hidden_states=True)
        frames = out.last_hidden_state
        mask = out.frame_mask
        if mask is None:
            mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        return (out.pooler_output.float(), frames.float(), mask, *(p.float() for p in out.pooled_hidden_states))


def output_names(num_pooled):
    """The graph's outputs in order: MAIN_OUTPUTS, then pooled_layer_0 ... pooled_layer_{num_pooled - 1}."""
    return [*MAIN_OUTPUTS, *(f"pooled_layer_{layer}" for layer in range(num_pooled))]


def example_inputs(extractor, spec, seconds, batch=2):
    """[batch, ...] features of noise clips `seconds` long (float32 torch), as the graph is traced on them.
    Batch 2: torch.export would fix an axis of size 1."""
    rate = extractor.sampling_rate
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(round(seconds * rate))).astype(np.float32) for _ in range(batch)]
    features = extractor(clips, sampling_rate=rate, return_tensors="pt")
    return features[spec.name].float()


def relative_difference(actual, expected):
    """max |actual - expected| / max |expected| (0 when both are all zeros): the error on a tensor's scale."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.abs(expected).max()
    error = np.abs(np.asarray(actual, dtype=np.float64) - expected).max()
    return float(error / scale) if scale > 0 else float(error)


def load_folder(model_dir):
    """(AutoModel in eval mode, AutoFeatureExtractor) of a model folder. Raises FileNotFoundError naming it."""
    from transformers import AutoFeatureExtractor, AutoModel

    import modeling_fusion  # noqa: F401  (registers this package's models with the Auto classes)

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a model folder (no config.json); build one with "
                                "`python -m modeling_fusion.hub build ...` or `python -m modeling_fusion.convert ...`")
    model = AutoModel.from_pretrained(folder).eval()  # this package's classes (library mode), not the folder's copy
    return model, AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)


def export_onnx(model_dir, output_dir, opset=18, dynamic_length=False, seconds=None, fp16=False):
    """Export the folder `model_dir` to `output_dir`/model.onnx, copy its feature extractor beside it, check
    onnxruntime against torch on the traced clip (and on a second length when the length is dynamic) and
    write manifest.json (inputs, outputs, shapes, units, the check). Returns the manifest (dict).

    opset: ONNX opset; dynamic_length: let the time axis vary between calls (the batch axis always does);
    seconds: clip length traced (GraphInput.default_seconds if None), the only length a fixed graph takes;
    fp16: float16 weights and activations, input and outputs float32.
    Raises ValueError when `dynamic_length` is asked of a backbone that cannot vary it (naming why), or when
    the model holds an op torch.export cannot trace; FileNotFoundError for a folder without config.json;
    ImportError when onnx, onnxscript or onnxruntime are missing (the `export` extra)."""
    for package in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(package)
        except ImportError:
            raise ImportError(f"ONNX export needs {package}: pip install 'modeling-fusion[export]'") from None
    model, extractor = load_folder(model_dir)
    spec = graph_input(model.config)
    if dynamic_length and spec.fixed_length:
        raise ValueError(f"{model.config.model_type}: --dynamic-length is not possible: {spec.fixed_length}. Export "
                         f"without it (one graph per clip length, --seconds).")
    seconds = spec.default_seconds if seconds is None else seconds
    if dynamic_length:  # any length serves; a time axis of 1 would be fixed by torch.export
        seconds = max(seconds, spec.default_seconds)
    inputs = example_inputs(extractor, spec, seconds)
    reference = FusionGraph(model, spec.name)
    with torch.no_grad():
        expected = [t.numpy() for t in reference(inputs)]
    graph = FusionGraph(model.half() if fp16 else model, spec.name)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    names = output_names(len(expected) - len(MAIN_OUTPUTS))
    min_length = trace(graph, inputs, output_dir / GRAPH_FILE, spec, dynamic_length, opset, names)
    model.float()  # the torch reference of the checks below stays float32
    copy_feature_extractor(model_dir, output_dir)
    session = _session(output_dir / GRAPH_FILE)
    actual = session.run(None, {spec.name: inputs.numpy()})
    check = {"seconds": seconds, "input_shape": list(inputs.shape),
             "pooler_output_max_relative": relative_difference(actual[0], expected[0]),
             "pooled_layers_max_relative": max(relative_difference(a, e) for a, e in zip(actual[3:], expected[3:]))}
    if dynamic_length:  # a second length: a size fixed by tracing would show here
        other = example_inputs(extractor, spec, 2 * seconds + 0.37)
        with torch.no_grad():
            wanted = reference(other)[0].numpy()
        check["second_input_shape"] = list(other.shape)
        check["second_pooler_output_max_relative"] = relative_difference(
            session.run(None, {spec.name: other.numpy()})[0], wanted)
    if fp16:
        check["fp16_peak_activation"] = peak_activation(model, inputs)
    manifest = describe(model, spec, names, session, opset, dynamic_length, fp16, check, min_length)
    (output_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def trace(graph, inputs, path, spec, dynamic_length, opset, names):
    """torch.export of `graph` on `inputs` (batch axis dynamic, and the time axis with `dynamic_length`), then
    torch.onnx.export of the program to `path`. Returns the smallest time-axis size the graph takes (the
    traced size when fixed). Raises ValueError naming the model and the failure.

    Shape conditions torch.export cannot prove for every length (e.g. ceil-mode pooling's "the last window
    starts inside the input", true for any length) become deferred runtime checks instead of export errors;
    the range it derives (EfficientAT: at least 33 frames) is returned and written to the manifest."""
    axes = {0: torch.export.Dim("batch")}
    if dynamic_length:
        axes[spec.time_axis] = torch.export.Dim.DYNAMIC
    try:
        program = torch.export.export(graph, (inputs,), dynamic_shapes={"inputs": axes},
                                      prefer_deferred_runtime_asserts_over_guards=True)
        torch.onnx.export(program, (inputs,), str(path), dynamo=True, opset_version=opset, input_names=[spec.name],
                          output_names=names, external_data=False, verbose=False)
    except Exception as error:  # torch.export and onnxscript raise their own error types
        summary = str(error).strip().splitlines()
        raise ValueError(f"torch.onnx.export failed for {type(graph.model).__name__}: "
                         f"{' '.join(summary[:3])[:600]}") from error
    user_input = program.graph_signature.user_inputs[0]
    shape = next(node for node in program.graph.nodes if node.name == user_input).meta["val"].shape
    name_axes(path, {str(size.node.expr): spec.axes[axis] for axis, size in enumerate(shape) if not isinstance(size, int)})
    size = shape[spec.time_axis]
    return size if isinstance(size, int) else int(program.range_constraints[size.node.expr].lower)


def name_axes(path, names):
    """Rename torch.export's size symbols (s0, s27, ...) in the graph's declared input and output shapes to
    `names` ({"s85": "batch", ...}), so that onnxruntime reports e.g. [batch, (frames//32), 640]."""
    import re

    import onnx

    model = onnx.load(str(path))
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b") if names else None
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if pattern and dim.dim_param:
                dim.dim_param = pattern.sub(lambda match: names[match.group(1)], dim.dim_param)
    onnx.save(model, str(path))


def _session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def copy_feature_extractor(model_dir, output_dir):
    """Copy preprocessor_config.json and, when it names remote code (`auto_map`), that module and every module
    it imports relatively, so AutoFeatureExtractor.from_pretrained(output_dir, trust_remote_code=True) works."""
    from transformers.dynamic_module_utils import get_relative_import_files

    source = Path(model_dir)
    config_file = source / "preprocessor_config.json"
    shutil.copy2(config_file, output_dir)
    auto_map = json.loads(config_file.read_text()).get("auto_map", {})
    for reference in auto_map.values():
        module = source / f"{reference.rsplit('.', 1)[0]}.py"
        for path in [module, *get_relative_import_files(str(module))]:
            shutil.copy2(path, output_dir)


@torch.no_grad()
def peak_activation(model, inputs):
    """{"max_abs": the largest |output| of any submodule on `inputs` (float32 run), "module": its name,
    "headroom": 65504 / max_abs} : above 1 the float16 range holds every activation of this input."""
    peaks = {}

    def hook(name):
        def record(module, args, output):
            if torch.is_tensor(output) and output.is_floating_point():
                peaks[name] = max(peaks.get(name, 0.0), float(output.detach().abs().max()))
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in model.named_modules() if name]
    try:
        model(**{graph_input(model.config).name: inputs}, output_hidden_states=True)
    finally:
        for handle in handles:
            handle.remove()
    name = max(peaks, key=peaks.get)
    return {"max_abs": peaks[name], "module": name, "headroom": FP16_MAX / peaks[name]}


def describe(model, spec, names, session, opset, dynamic_length, fp16, check, min_length):
    """The manifest: what the graph takes and returns (shapes as onnxruntime reports them), and how to call it."""
    graph_outputs = {output.name: output.shape for output in session.get_outputs()}
    config = model.config
    outputs = {
        "pooler_output": "[batch, D] clip embedding (config.embedding_type; D = config.hidden_size)",
        "last_hidden_state": "[batch, T, D] fused per-frame features",
        "frame_mask": "[batch, T] bool, True for real frames: always all True (no call holds padding)",
    }
    for layer in range(len(names) - len(MAIN_OUTPUTS)):
        outputs[f"pooled_layer_{layer}"] = (f"[batch, D_{layer}] clip embedding of layer {layer} alone "
                                            "(pooled_hidden_states[l]; layer 0 is the input)")
    return {
        "format": "onnx", "file": GRAPH_FILE, "opset": opset, "dtype": "float16" if fp16 else "float32",
        "model_type": config.model_type, "architecture": type(model).__name__,
        "fusion_layers": list(getattr(config, "fusion_layers", [])), "pooling": config.pooling,
        "embedding_type": config.embedding_type,
        "input": {"name": spec.name, "shape": graph_input_shape(session, spec), "dtype": "float32",
                  "units": spec.units,
                  "length": f"varies between calls along axis {spec.time_axis} (torch.export proved every size "
                            f">= {min_length}; shorter ones the model takes are checked in the tests)"
                  if dynamic_length else
                  f"fixed at {check['input_shape'][spec.time_axis]} along axis {spec.time_axis}"
                  + (f" ({spec.fixed_length})" if spec.fixed_length else " (export with --dynamic-length to vary)")},
        "outputs": {name: {"shape": graph_outputs[name], "meaning": outputs[name]} for name in names},
        "one_length_per_call": "every clip of a call must have the same length: pass no padding (split a batch "
                               "by length, as the torch model does internally)",
        "usage": ("extractor = AutoFeatureExtractor.from_pretrained(OUTPUT_DIR, trust_remote_code=True); "
                  "features = extractor(audio, sampling_rate=extractor.sampling_rate, return_tensors='np'); "
                  f"outputs = onnxruntime.InferenceSession(OUTPUT_DIR + '/{GRAPH_FILE}').run(None, "
                  f"{{'{spec.name}': features['{spec.name}']}})"),
        "check": check,
    }


def graph_input_shape(session, spec):
    """The input's shape as the graph declares it (symbolic names for dynamic axes)."""
    return next(i.shape for i in session.get_inputs() if i.name == spec.name)
