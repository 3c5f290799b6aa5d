"""Clips as the paper feeds them: decoded and resampled by the package's input path, fixed to `unit_sec`.

Shorter clips are zero-padded at the end. Longer clips are cropped: from the start in the "start"
view (test clips), at a random offset in the "random" view (train/valid clips). The offset is drawn
as EVAR's `np.random.randint(length - unit)` but from a generator seeded by (crop_seed, row), so it
does not depend on the order, the batch or the number of processes.
"""

import numpy as np
import torch

VIEWS = ("start", "random")


def crop_offset(length, unit_samples, view, crop_seed, row):
    """Start sample of the unit-long window of a clip of `length` samples."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if view == "start" or length <= unit_samples:
        return 0
    return int(np.random.default_rng([crop_seed, row]).integers(0, length - unit_samples))


def fix_length(wave, unit_samples, offset=0):
    """[N] -> [unit_samples] float32: the window at `offset`, zero-padded at the end when short."""
    wave = np.asarray(wave, dtype=np.float32)[offset:offset + unit_samples]
    return np.pad(wave, (0, unit_samples - len(wave)))


class ClipDataset(torch.utils.data.Dataset):
    """Item i: row `rows[i]` of a TaskTable, decoded, resampled and fixed to `unit_samples`.

    Returns dict(row, wave [unit_samples], length (samples before fixing), ok). An unreadable file
    raises a ValueError naming it, or with `skip_bad` gives ok=False and a silent clip.
    """

    def __init__(self, table, rows, view, unit_samples, crop_seed, skip_bad=False):
        self.table, self.rows, self.view = table, np.asarray(rows), view
        self.unit_samples, self.crop_seed, self.skip_bad = unit_samples, crop_seed, skip_bad

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        row = int(self.rows[index])
        try:
            wave = self.table.wave(row)  # load_audio: the file's own rate -> soxr, as fusion-embed
        except ValueError as error:
            if not self.skip_bad:
                raise ValueError(
                    f"{error} (in {self.table.source}). Fix or remove it, or pass --skip-bad to skip unreadable files."
                ) from error
            return {"row": row, "wave": np.zeros(self.unit_samples, np.float32), "length": 0, "ok": False}
        offset = crop_offset(len(wave), self.unit_samples, self.view, self.crop_seed, row)
        return {"row": row, "wave": fix_length(wave, self.unit_samples, offset), "length": len(wave), "ok": True}


class ClipCollator:
    """Batch of ClipDataset items -> tensors + the feature extractor's output (picklable for workers)."""

    def __init__(self, feature_extractor):
        self.feature_extractor = feature_extractor

    def __call__(self, items):
        features = self.feature_extractor(
            [item["wave"] for item in items], sampling_rate=self.feature_extractor.sampling_rate, return_tensors="pt"
        )
        return {
            "rows": torch.tensor([item["row"] for item in items]),
            "lengths": torch.tensor([item["length"] for item in items]),
            "ok": torch.tensor([item["ok"] for item in items]),
            "features": dict(features),
        }
