"""Shared pieces of the YAMNet tests: the real .tflite converted once, real clips, the interpreter."""

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from conftest import shared_path
from modeling_fusion.convert import main as convert_main

RATE = 16000
PATCH_SAMPLES = 15600  # the released TFLite build's fixed input, 0.975 s
# Real clips: two keywords, two street sounds, two spoken digits (8 kHz, resampled here).
CLIPS = (
    ("speech_commands_v2_test", "audio", "down", "022cd682_nohash_0.flac"),
    ("speech_commands_v2_test", "audio", "yes", "03401e93_nohash_0.flac"),
    ("urbansound8k_3folds", "audio", "fold1", "101415-3-0-2.ogg"),
    ("urbansound8k_3folds", "audio", "fold2", "100652-3-0-0.ogg"),
    ("fsdd", "audio", "0_george_0.flac"),
    ("fsdd", "audio", "7_jackson_3.flac"),
)


def read_clip(parts):
    """A real clip as float32 mono at 16 kHz."""
    audio, rate = sf.read(shared_path("data", *parts), dtype="float32")
    if rate != RATE:
        audio = resample_poly(audio, RATE, rate).astype(np.float32)
    return audio


def first_patch(audio):
    """The first 15600 samples, zero-padded: what the fixed-input TFLite build takes."""
    return np.pad(audio, (0, max(0, PATCH_SAMPLES - len(audio))))[:PATCH_SAMPLES]


def convert_real(output):
    """Convert ../shared/weights/yamnet.tflite into `output` with the real class names."""
    convert_main(["yamnet", "--checkpoint", str(shared_path("weights", "yamnet.tflite")), "--output", str(output),
                  "--labels", str(shared_path("weights", "yamnet_class_map.csv"))])
    return output


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return convert_real(tmp_path_factory.mktemp("yamnet") / "yamnet-fusion")
