"""The 527 AudioSet class names (`class_labels_indices.csv`: index,mid,display_name) for `id2label`."""

import csv
import io
import logging
import os
import urllib.request

logger = logging.getLogger(__name__)

AUDIOSET_LABELS_URL = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/class_labels_indices.csv"
NUM_AUDIOSET_CLASSES = 527


def parse_labels_csv(text, source):
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "display_name" not in rows[0]:
        raise ValueError(f"{source}: expected a CSV with columns index,mid,display_name")
    return [row["display_name"] for row in sorted(rows, key=lambda row: int(row["index"]))]


def load_audioset_labels(path=None, num_classes=NUM_AUDIOSET_CLASSES, labels_file="class_labels_indices.csv"):
    """Names from `path`; else the official list when online; else LABEL_i with a warning that names
    `labels_file`, the CSV this checkpoint's classes come in (YAMNet: yamnet_class_map.csv)."""
    if path is not None:
        with open(path, encoding="utf-8") as handle:
            names = parse_labels_csv(handle.read(), path)
        if len(names) != num_classes:
            raise ValueError(f"{path}: has {len(names)} labels, the checkpoint has {num_classes} outputs")
        return names
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
        try:
            with urllib.request.urlopen(AUDIOSET_LABELS_URL, timeout=10) as response:
                names = parse_labels_csv(response.read().decode("utf-8"), AUDIOSET_LABELS_URL)
            if len(names) == num_classes:
                return names
        except OSError as error:
            logger.warning(f"could not download the AudioSet label names ({error})")
    logger.warning(
        "AudioSet label names unavailable: using LABEL_0 ... LABEL_%d. Pass --labels %s to name them.",
        num_classes - 1, labels_file,
    )
    return [f"LABEL_{index}" for index in range(num_classes)]


def label_maps(names):
    return {index: name for index, name in enumerate(names)}, {name: index for index, name in enumerate(names)}
