"""Clips as the paper feeds them: decoded and resampled by the package's input path, fixed to `unit_sec`.

Shorter clips are zero-padded at the end. Longer clips are cropped: from the start in the "start"
view (test clips), at a random offset in the "random" view (train/valid clips). The offset is drawn
as EVAR's `np.random.randint(length - unit)` but from a generator seeded by (crop_seed, row), so it
does not depend on the order, the batch or the number of processes.

The DataLoader fetches a whole batch at once (`ClipDataset.__getitems__`, which torch's fetcher calls):
one Arrow read for the batch's rows, each clip decoded and cropped straight into one preallocated
[B, unit] buffer (in shared memory inside a worker, as `default_collate` would allocate it), and
`keep_batch` as the collate function. A batch whose every clip is its file's own mono 16-bit PCM at the
model's rate travels as int16 (half the bytes of float32): `int16 * 2**-15` is exactly what `load_audio`
returns for such a file (soundfile's float read; tests/test_eval_audio.py), and `batch_to_float` applies
it on the device.
"""

import io

import numpy as np
import soundfile
import torch

from modeling_fusion.audio_input import check_float_range, fix_length, load_audio

VIEWS = ("start", "random")
PCM16_SCALE = 2.0 ** -15  # libsndfile's float read of 16-bit PCM: x / 32768, exact in float32


def crop_offset(length, unit_samples, view, crop_seed, row):
    """Start sample of the unit-long window of a clip of `length` samples."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if view == "start" or length <= unit_samples:
        return 0
    return int(np.random.default_rng([crop_seed, row]).integers(0, length - unit_samples))


def read_clip(source, sampling_rate, name):
    """A row's undecoded audio ({"path", "bytes"}) -> its samples at `sampling_rate` Hz: the file's own int16
    [N] when it is mono 16-bit PCM at that rate (`int16 * PCM16_SCALE` equals `load_audio`'s float32 bit for
    bit), else `load_audio`'s float32 [N]. Raises ValueError naming the file when it is unreadable, empty,
    non-finite, or float samples far past [-1, 1] (integer PCM stored as floats; checked here so that the
    batch needs no check on the device)."""
    pcm = _pcm16(source, sampling_rate)
    if pcm is None:
        wave = load_audio(source, sampling_rate, name=name)
        check_float_range(float(np.abs(wave).max()), name)
        return wave
    if not len(pcm):
        raise ValueError(f"{name}: the audio is empty (0 samples).")
    return pcm


def _pcm16(source, sampling_rate):
    """int16 [N] of a mono 16-bit PCM file at `sampling_rate`, else None (anything else, or unreadable: left to
    `load_audio`, which decodes it or names the problem)."""
    where = io.BytesIO(source["bytes"]) if source.get("bytes") is not None else source.get("path")
    if where is None:
        return None
    try:
        with soundfile.SoundFile(where) as handle:
            if handle.subtype != "PCM_16" or handle.channels != 1 or handle.samplerate != sampling_rate:
                return None
            return handle.read(dtype="int16")
    except (soundfile.LibsndfileError, RuntimeError, TypeError, OSError):
        return None


def batch_to_float(waves):
    """A batch's waves (int16 PCM or float32 tensor, any device) -> float32 on the same device, exactly as
    `load_audio` would return them."""
    return waves.float().mul_(PCM16_SCALE) if waves.dtype == torch.int16 else waves


def keep_batch(batch):
    """The DataLoader's collate function: `ClipDataset.__getitems__` already returns the batch."""
    return batch


class ClipDataset(torch.utils.data.Dataset):
    """Rows `rows` of a TaskTable, decoded, resampled and fixed to `unit_samples`.

    `dataset[[i, j, ...]]` (`__getitems__`): {"waves" [B, unit] int16 (every clip 16-bit PCM at the model's
    rate) or float32, "samples" [B] (each wave's own length), "rows", "lengths" (samples before fixing), "ok"}.
    `dataset[i]`: dict(row, wave [unit_samples] float32, length, ok). Clips come from `store` (a filled
    `store.AudioStore`) when given, else are decoded. An unreadable file raises a ValueError naming it, or
    with `skip_bad` gives ok=False and a silent clip.
    """

    def __init__(self, table, rows, view, unit_samples, crop_seed, skip_bad=False, store=None):
        self.table, self.rows, self.view = table, np.asarray(rows), view
        self.unit_samples, self.crop_seed, self.skip_bad, self.store = unit_samples, crop_seed, skip_bad, store

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        batch = self.__getitems__([index])
        return {"row": int(batch["rows"][0]), "wave": batch_to_float(batch["waves"])[0].numpy(),
                "length": int(batch["lengths"][0]), "ok": bool(batch["ok"][0])}

    def __getitems__(self, indices):
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        if self.store is not None:
            return self.batch(rows, self.store.clips(rows))
        return self.batch(rows, [_attempt(read_clip, source, self.table.sampling_rate, self.table.names[row])
                                 for row, source in zip(rows, self.table.sources(rows))])

    def batch(self, rows, found):
        """The batch dict of table rows `rows` from their samples `found` (arrays, or the ValueError each gave)."""
        waves = [self._or_skip(wave) for wave in found]
        lengths = np.array([0 if wave is None else len(wave) for wave in waves], dtype=np.int64)
        pcm = all(wave is None or wave.dtype == np.int16 for wave in waves)
        batch = _buffer(len(rows), self.unit_samples, torch.int16 if pcm else torch.float32)
        out = batch.numpy()
        for index, (row, wave) in enumerate(zip(rows, waves)):
            kept = 0
            if wave is not None:
                offset = crop_offset(len(wave), self.unit_samples, self.view, self.crop_seed, int(row))
                window = wave[offset:offset + self.unit_samples]
                kept = len(window)
                out[index, :kept] = window
                if window.dtype != out.dtype:  # int16 into a float32 batch: the same scale as `batch_to_float`
                    out[index, :kept] *= np.float32(PCM16_SCALE)
            out[index, kept:] = 0
        return {"waves": batch, "samples": torch.full((len(rows),), self.unit_samples, dtype=torch.int64),
                "rows": torch.from_numpy(rows.astype(np.int64)), "lengths": torch.from_numpy(lengths),
                "ok": torch.tensor([wave is not None for wave in waves])}

    def _or_skip(self, wave):
        """An array as is; an error (unreadable file) raised naming the task, or None with `skip_bad`."""
        if not isinstance(wave, ValueError):
            return wave
        if not self.skip_bad:
            raise ValueError(f"{wave} (in {self.table.source}). Fix or remove it, or pass --skip-bad to skip "
                             "unreadable files.") from wave
        return None


class ClipStream(torch.utils.data.IterableDataset):
    """A streamed table's rows `rows` (ascending) as `ClipDataset` batches of `batch_size`, read in stream order
    (`datasource.StreamedAudio.iterate`) and decoded as they arrive; the same clips as `ClipDataset` gives."""

    def __init__(self, table, rows, view, unit_samples, crop_seed, skip_bad, batch_size):
        self.clips = ClipDataset(table, rows, view, unit_samples, crop_seed, skip_bad)
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.clips) // self.batch_size)

    def __iter__(self):
        table, rows, found = self.clips.table, [], []
        for row, source in table.audio.iterate(self.clips.rows):
            rows.append(row)
            found.append(_attempt(read_clip, source, table.sampling_rate, table.names[row]))
            if len(rows) == self.batch_size:
                yield self.clips.batch(np.array(rows), found)
                rows, found = [], []
        if rows:
            yield self.clips.batch(np.array(rows), found)


def _attempt(function, *args):
    """function(*args), or the ValueError it raised."""
    try:
        return function(*args)
    except ValueError as error:
        return error


def _buffer(rows, samples, dtype):
    """An uninitialised [rows, samples] tensor; in a DataLoader worker its storage is shared memory from the
    start (as `default_collate` allocates it), so the batch reaches the main process without another copy."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty((rows, samples), dtype=dtype)
    prototype = torch.empty(0, dtype=dtype)
    return prototype.new(prototype._typed_storage()._new_shared(rows * samples)).view(rows, samples)


__all__ = ["VIEWS", "ClipDataset", "ClipStream", "batch_to_float", "crop_offset", "fix_length", "keep_batch", "read_clip"]
