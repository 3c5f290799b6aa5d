"""Listing audio files for the command-line tools (decoding is `audio_input.decode` / `load_audio`)."""

import csv
from pathlib import Path

import soundfile

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au"}


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


def durations(paths):
    """Seconds of each file from its header (soundfile.info, no decoding); 0.0 where soundfile cannot read the
    header (e.g. M4A: decoded later by torchcodec). For ordering files by length, not for any result."""
    seconds = []
    for path in paths:
        try:
            info = soundfile.info(str(path))
            seconds.append(info.frames / info.samplerate)
        except (soundfile.LibsndfileError, RuntimeError, TypeError, OSError):
            seconds.append(0.0)
    return seconds
