"""Convert Google's YAMNet TFLite file (`yamnet.tflite`, tensorflow/models research/audioset/yamnet).

The flatbuffer is read with the pure-Python `tflite` package (no TensorFlow). The body's ops are
found by walking the graph: the first CONV_2D is YAMNet's layer1, then a DEPTHWISE_CONV_2D and a
CONV_2D per layer 2-14 (each with its folded-BatchNorm bias, "SAME" padding and a fused ReLU), then
MEAN and the 521-way FULLY_CONNECTED. int8 weights (dynamic-range quantised builds) are dequantised
as (q - zero_point) * scale per channel; float16 and float32 weights are read as they are. The
front end is not taken from the file (its DFT and mel matrices are int8 there): the converter checks
that the file's window, log offset and mel matrix are YAMNet's and uses the float front end.
"""

import logging

import numpy as np
import torch

from .audioset_labels import label_maps, load_audioset_labels
from ..configuration_yamnet import LAYERS, YAMNetFusionConfig
from ..feature_extraction_vggish import htk_mel_filters
from ..feature_extraction_yamnet import YAMNetFeatureExtractor
from ..modeling_yamnet import YAMNetForAudioClassification
from .save_folder import save_model_folder

logger = logging.getLogger(__name__)

NUM_CLASSES = 521
# tflite schema enums (tflite/BuiltinOperator.py, TensorType.py, Padding.py, ActivationFunctionType.py)
CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, FULLY_CONNECTED, MEAN = 3, 4, 6, 9, 40
FLOAT32, FLOAT16, INT8 = 0, 1, 9
SAME, RELU = 0, 1


def _tflite():
    try:
        import tflite
    except ImportError:
        raise ImportError("converting a .tflite file needs the `tflite` package: pip install tflite") from None
    return tflite


class TFLiteGraph:
    """The tensors and operators of subgraph 0 of a .tflite file, as numpy arrays and op codes."""

    def __init__(self, path):
        tflite = _tflite()
        try:
            with open(path, "rb") as handle:
                self.buffer = handle.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"checkpoint not found: {path}") from None
        if self.buffer[4:8] != b"TFL3":
            raise ValueError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
        self.path = path
        self.model = tflite.Model.GetRootAsModel(self.buffer, 0)
        self.graph = self.model.Subgraphs(0)
        codes = self.model.OperatorCodes
        self.ops = []
        for index in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(index)
            code = codes(op.OpcodeIndex())
            self.ops.append((max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), op))
        # producer of each tensor: DEQUANTIZE outputs lead back to the stored weights
        self.dequantized = {int(op.OutputsAsNumpy()[0]): int(op.InputsAsNumpy()[0])
                            for code, op in self.ops if code == DEQUANTIZE}

    def name(self, index):
        return self.graph.Tensors(index).Name().decode()

    def array(self, index):
        """Tensor `index` (following a DEQUANTIZE to its input) as float32 numpy, dequantised."""
        index = self.dequantized.get(index, index)
        tensor = self.graph.Tensors(index)
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int):
            raise ValueError(f"{self.path}: tensor {self.name(index)!r} has no stored data")
        shape = tuple(tensor.ShapeAsNumpy())
        kind = tensor.Type()
        if kind == FLOAT32:
            return data.view(np.float32).reshape(shape).copy()
        if kind == FLOAT16:
            return data.view(np.float16).reshape(shape).astype(np.float32)
        if kind != INT8:
            raise ValueError(f"{self.path}: tensor {self.name(index)!r} has unsupported type {kind}")
        quant = tensor.Quantization()
        scale, zero_point = quant.ScaleAsNumpy(), quant.ZeroPointAsNumpy()
        axis = quant.QuantizedDimension()
        broadcast = [1] * len(shape)
        if np.size(scale) > 1:
            broadcast[axis] = -1
        values = data.view(np.int8).reshape(shape).astype(np.float64)
        values = (values - np.reshape(zero_point, broadcast)) * np.reshape(scale, broadcast)
        return values.astype(np.float32)

    def options(self, op, options_class):
        table = op.BuiltinOptions()
        options = options_class()
        options.Init(table.Bytes, table.Pos)
        return options


def _conv_op(graph, op, kind, stride, name):
    """(weight, bias) of one conv op, its options checked against YAMNet's definition."""
    tflite = _tflite()
    options = graph.options(op, tflite.DepthwiseConv2DOptions if kind == DEPTHWISE_CONV_2D else tflite.Conv2DOptions)
    found = (options.StrideH(), options.StrideW(), options.Padding(), options.FusedActivationFunction())
    if found != (stride, stride, SAME, RELU):
        raise ValueError(f"{graph.path}: {name} has (stride_h, stride_w, padding, activation) = {found}, "
                         f"expected ({stride}, {stride}, SAME, RELU): not the YAMNet graph")
    inputs = op.InputsAsNumpy()
    if len(inputs) < 3 or inputs[2] < 0:
        raise ValueError(f"{graph.path}: {name} has no bias: BatchNorm was not folded, a layout this reader refuses")
    return graph.array(int(inputs[1])), graph.array(int(inputs[2]))


def read_yamnet(path):
    """.tflite -> (state dict of YAMNetForAudioClassification, the front end's constants for checking)."""
    graph = TFLiteGraph(path)
    body = [(code, op) for code, op in graph.ops if code in (CONV_2D, DEPTHWISE_CONV_2D)]
    dense = [op for code, op in graph.ops if code == FULLY_CONNECTED]
    expected = [CONV_2D] + [DEPTHWISE_CONV_2D, CONV_2D] * (len(LAYERS) - 1)
    if [code for code, _ in body] != expected or not dense or not any(code == MEAN for code, _ in graph.ops):
        raise ValueError(f"{path}: the conv/depthwise ops do not follow YAMNet's 14 layers (then MEAN, "
                         "FULLY_CONNECTED): not a YAMNet TFLite build")
    state = {}
    channels = 1
    for layer, (stride, out_channels) in enumerate(LAYERS, start=1):
        prefix = f"yamnet.layers.{layer - 1}"
        if layer == 1:
            weight, bias = _conv_op(graph, body[0][1], CONV_2D, stride, "layer1/conv")
            parts = [(f"{prefix}", weight.transpose(0, 3, 1, 2), bias, (out_channels, channels, 3, 3))]
        else:
            dw_op, pw_op = body[2 * layer - 3][1], body[2 * layer - 2][1]
            dw_weight, dw_bias = _conv_op(graph, dw_op, DEPTHWISE_CONV_2D, stride, f"layer{layer}/depthwise_conv")
            pw_weight, pw_bias = _conv_op(graph, pw_op, CONV_2D, 1, f"layer{layer}/pointwise_conv")
            parts = [(f"{prefix}.depthwise", dw_weight.transpose(3, 0, 1, 2), dw_bias, (channels, 1, 3, 3)),
                     (f"{prefix}.pointwise", pw_weight.transpose(0, 3, 1, 2), pw_bias, (out_channels, channels, 1, 1))]
        for key, weight, bias, shape in parts:
            if weight.shape != shape or bias.shape != (shape[0],):
                raise ValueError(f"{path}: {key} weight {weight.shape} / bias {bias.shape}, expected {shape}")
            state[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
            state[f"{key}.bias"] = torch.from_numpy(bias)
        channels = out_channels
    head = dense[-1].InputsAsNumpy()
    weight, bias = graph.array(int(head[1])), graph.array(int(head[2]))
    if weight.shape != (NUM_CLASSES, channels) or bias.shape != (NUM_CLASSES,):
        raise ValueError(f"{path}: the last FULLY_CONNECTED is {weight.shape}, expected ({NUM_CLASSES}, {channels})")
    state["classifier.weight"], state["classifier.bias"] = torch.from_numpy(weight), torch.from_numpy(bias)
    return state, graph, dense[:-1]


def check_front_end(graph, front_end_ops, extractor):
    """Raise unless the file's front end is YAMNet's: periodic Hann window, log offset, mel matrix.

    The mel FULLY_CONNECTED holds the [64, 257] matrix (int8 in the released file: it must match the
    float HTK matrix to half a quantisation step) and the log offset as its bias.
    """
    if len(front_end_ops) != 3:
        raise ValueError(f"{graph.path}: expected 3 front-end FULLY_CONNECTED ops (real DFT, imaginary DFT, "
                         f"mel), found {len(front_end_ops)}")
    inputs = front_end_ops[2].InputsAsNumpy()
    mel, offset = graph.array(int(inputs[1])), graph.array(int(inputs[2]))
    reference = htk_mel_filters(extractor.sampling_rate, extractor.n_fft, extractor.feature_size,
                                extractor.f_min, extractor.f_max).T
    step = np.abs(mel - reference).max() / max(np.abs(reference).max(), 1e-12)
    if mel.shape != reference.shape or step > 1 / 127:
        raise ValueError(f"{graph.path}: the mel matrix ({mel.shape}) is not YAMNet's (max deviation {step:.3g})")
    if not np.allclose(offset, extractor.log_offset, rtol=1e-6, atol=0):
        raise ValueError(f"{graph.path}: log offset {offset[:1]}, expected {extractor.log_offset}")
    logger.info(f"front end checked: mel matrix within {step:.2e} of the float HTK matrix, log offset {offset[0]}")


def convert(checkpoint, output, layers=None, labels=None):
    """.tflite file -> Hub-ready folder `output` (YAMNetForAudioClassification + feature extractor)."""
    state, graph, front_end_ops = read_yamnet(checkpoint)
    extractor = YAMNetFeatureExtractor()
    check_front_end(graph, front_end_ops, extractor)
    id2label, label2id = label_maps(load_audioset_labels(labels, NUM_CLASSES, labels_file="yamnet_class_map.csv"))
    options = {} if layers is None else {"fusion_layers": list(layers)}
    config = YAMNetFusionConfig(id2label=id2label, label2id=label2id,
                                problem_type="multi_label_classification", **options)
    model = YAMNetForAudioClassification(config).eval()
    model.load_state_dict(state, strict=True)
    logger.info(f"YAMNet, fusion of layers {config.fusion_layers} -> {config.hidden_size}-d")
    return save_model_folder(model, extractor, output)


def add_arguments(parser):
    parser.add_argument("--layers", type=int, nargs="+", help="layers to fuse, 1-14 (default: the config's)")
    parser.add_argument("--labels", help="yamnet_class_map.csv with the 521 class names (index,mid,display_name)")


def run(args):
    return convert(args.checkpoint, args.output, args.layers, args.labels)
