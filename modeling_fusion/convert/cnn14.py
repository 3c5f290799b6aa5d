"""Convert the published PANNs CNN14 checkpoints (`Cnn14_16k_mAP=0.438.pth`, `Cnn14_mAP=0.431.pth`)."""

import logging

import numpy as np

from .audioset_labels import label_maps, load_audioset_labels
from .checkpoints import load_torch_checkpoint
from ..configuration_cnn14 import Cnn14FusionConfig
from ..feature_extraction_cnn14 import Cnn14FeatureExtractor
from ..modeling_cnn14 import Cnn14ForAudioClassification
from .save_folder import save_model_folder

logger = logging.getLogger(__name__)

FRONT_END_KEYS = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                  "logmel_extractor.melW")


def sampling_rate_of(state_dict):
    """16 kHz or 32 kHz, from the STFT kernels: 257 bins (n_fft 512) or 513 bins (n_fft 1024)."""
    bins = state_dict["spectrogram_extractor.stft.conv_real.weight"].shape[0]
    rates = {257: 16000, 513: 32000}
    if bins not in rates:
        raise ValueError(f"unknown PANNs front end with {bins} STFT bins; expected 257 (16 kHz) or 513 (32 kHz)")
    return rates[bins]


def convert_state_dict(state_dict):
    """PANNs keys -> ours: the body under `cnn14.`, `fc_audioset` -> `classifier`, front end dropped."""
    converted = {}
    for key, value in state_dict.items():
        if key in FRONT_END_KEYS:
            continue
        if key.startswith(("bn0.", "conv_block", "fc1.")):
            converted[f"cnn14.{key}"] = value
        elif key.startswith("fc_audioset."):
            converted["classifier." + key.split(".", 1)[1]] = value
        else:
            raise ValueError(f"unexpected key in a CNN14 checkpoint: {key}")
    return converted


def check_front_end(state_dict, feature_extractor):
    """Our numpy front end must be the checkpoint's: same mel matrix and window-weighted DFT."""
    mel = state_dict["logmel_extractor.melW"].double().numpy().T
    error = np.abs(mel - feature_extractor.mel_filters).max()
    if error > 1e-5:
        raise ValueError(f"the checkpoint's mel filterbank differs from PANNs' by {error:.2e}")
    real = state_dict["spectrogram_extractor.stft.conv_real.weight"][:, 0].double().numpy()
    n_fft = feature_extractor.n_fft
    expected = np.cos(2 * np.pi * np.outer(np.arange(n_fft // 2 + 1), np.arange(n_fft)) / n_fft)
    error = np.abs(real - expected * feature_extractor.window).max()
    if error > 1e-5:
        raise ValueError(f"the checkpoint's STFT kernels differ from a periodic-Hann DFT by {error:.2e}")


def convert(checkpoint, output, sampling_rate=None, layers=(3, 6), labels=None):
    """Checkpoint file -> Hub-ready folder `output` (Cnn14ForAudioClassification + feature extractor)."""
    state_dict = load_torch_checkpoint(checkpoint)
    state_dict = state_dict.get("model", state_dict)
    detected = sampling_rate_of(state_dict)
    if sampling_rate is not None and sampling_rate != detected:
        raise ValueError(f"--sample-rate {sampling_rate} disagrees with the checkpoint's {detected} Hz front end")
    feature_extractor = Cnn14FeatureExtractor.for_sampling_rate(detected)
    check_front_end(state_dict, feature_extractor)
    num_classes = state_dict["fc_audioset.weight"].shape[0]
    id2label, label2id = label_maps(load_audioset_labels(labels, num_classes))
    config = Cnn14FusionConfig(
        fusion_layers=list(layers), id2label=id2label, label2id=label2id, problem_type="multi_label_classification"
    )
    model = Cnn14ForAudioClassification(config).eval()
    model.load_state_dict(convert_state_dict(state_dict), strict=True)
    logger.info(f"CNN14 {detected} Hz, fusion of blocks {config.fusion_layers} -> {config.hidden_size}-d")
    return save_model_folder(model, feature_extractor, output)


def add_arguments(parser):
    parser.add_argument("--sample-rate", type=int, choices=[16000, 32000],
                        help="check the checkpoint's rate (it is read from the STFT kernel shape)")
    parser.add_argument("--layers", type=int, nargs="+", default=[3, 6], help="ConvBlocks to fuse (default: 3 6)")
    parser.add_argument("--labels", help="class_labels_indices.csv with the AudioSet names")


def run(args):
    return convert(args.checkpoint, args.output, args.sample_rate, args.layers, args.labels)
