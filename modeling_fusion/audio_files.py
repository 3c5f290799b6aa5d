"""Reading audio files for the command-line tools: soundfile decoding, mono downmix, polyphase resampling."""

import csv
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au"}


def read_audio(path, sampling_rate):
    """File -> mono float32 at `sampling_rate` (channels averaged, resample_poly when the rate differs)."""
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise ValueError(f"cannot decode audio file {path}: {error}") from None
    audio = audio.mean(axis=1)
    if rate != sampling_rate:
        common = gcd(rate, sampling_rate)
        audio = resample_poly(audio, sampling_rate // common, rate // common).astype(np.float32)
    return audio


def list_audio(source):
    """A folder of audio (searched recursively) or an audiofolder dataset (metadata.csv with file_name).

    Returns (paths, metadata rows or None).
    """
    source = Path(source)
    if not source.is_dir():
        raise ValueError(f"{source} is not a folder of audio files or an audiofolder dataset")
    metadata = source / "metadata.csv"
    if metadata.exists():
        with open(metadata, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "file_name" not in rows[0]:
            raise ValueError(f"{metadata} needs a file_name column (the audiofolder layout)")
        return [source / row["file_name"] for row in rows], rows
    paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise ValueError(f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) under {source}")
    return paths, None
