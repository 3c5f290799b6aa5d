"""Prepared audio: every clip of a task decoded and resampled once per (task source, model rate), reused by
both views, every model and fusion config at that rate, reruns and sweeps (as HEAR's preprocessing resamples
each task once per rate; EVAR's prepare_wav).

Exact: a row holds what `clips.read_clip` returns, i.e. `load_audio`'s float32 at the model's rate, or the
file's own int16 where that is bit-identical (mono 16-bit PCM at the model's rate). Whole clips are stored,
so the crop rules (start/random view, unit_sec, crop seed) apply on reading and share one store.

One directory per (source key, rate, resampler, decoder versions); table rows in blocks of `BLOCK_ROWS`:
`b.pcm16.npy` and `b.float32.npy` (the block's clips of each kind, concatenated), `b.errors.json` (unreadable
files' messages) and last `b.index.npy` [rows, 3] int64 (kind 0 int16 / 1 float32 / -1 error, offset, length).
Every file is written to a temporary name and renamed (`cache._atomic`), the index last, so a block is
complete or absent: a killed fill resumes at the first missing block. DataLoader workers write blocks
themselves (no samples cross processes). Disk guard: before the first block is written the store's size is
estimated from that block (bytes per row x rows); when it does not fit the free space (less a reserve) the
run says so in one line and decodes as it would without a store.
"""

import json
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import soundfile
import torch
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from modeling_fusion.audio_input import resampler_tag

from .cache import _atomic, digest
from .clips import _attempt, read_clip

BLOCK_ROWS = 256
FORMAT = 1  # bump when what a row holds changes
RESERVE_BYTES = 2 * 2 ** 30  # free space left to everything else
KINDS = (np.int16, np.float32)
NAMES = ("pcm16", "float32")  # each kind's data file


def store_key(table):
    """What a stored row depends on: the task's rows, the rate, the resampler and the decoders."""
    try:
        torchcodec = version("torchcodec")
    except PackageNotFoundError:
        torchcodec = None
    return digest(FORMAT, table.source_key, table.sampling_rate, resampler_tag(), soundfile.__version__,
                  soundfile.__libsndfile_version__, torchcodec)


class AudioStore:
    """The prepared audio of one TaskTable under `root` (`directory` = root/<source name>-<store_key>)."""

    def __init__(self, root, table):
        self.table = table
        self.directory = Path(root) / f"{Path(table.source).name}-{store_key(table)}"
        self.blocks = {}  # block -> (index, int16 data, float32 data, errors), memory-mapped once per process

    def _path(self, block, what):
        return self.directory / f"{block:05d}.{what}"

    def missing(self, rows):
        """Blocks holding any of `rows` that are not complete yet, ascending."""
        blocks = np.unique(np.asarray(rows, dtype=np.int64) // BLOCK_ROWS)
        return [int(block) for block in blocks if not self._path(block, "index.npy").exists()]

    def decode(self, block):
        """(index [rows, 3], [int16 data, float32 data], errors {row: message}) of one block, decoded now."""
        rows = np.arange(block * BLOCK_ROWS, min((block + 1) * BLOCK_ROWS, len(self.table)))
        found = [_attempt(read_clip, source, self.table.sampling_rate, self.table.names[row])
                 for row, source in zip(rows, self.table.sources(rows))]
        index, parts, ends, errors = np.zeros((len(rows), 3), np.int64), ([], []), [0, 0], {}
        for position, wave in enumerate(found):
            if isinstance(wave, ValueError):
                index[position] = (-1, 0, 0)
                errors[str(position)] = str(wave)
                continue
            kind = KINDS.index(wave.dtype.type)
            index[position] = (kind, ends[kind], len(wave))
            parts[kind].append(wave)
            ends[kind] += len(wave)
        data = [np.concatenate(part) if part else np.zeros(0, dtype) for part, dtype in zip(parts, KINDS)]
        return index, data, errors

    def write(self, block, decoded):
        """Store a decoded block (the index file last); returns its bytes."""
        index, data, errors = decoded
        self.directory.mkdir(parents=True, exist_ok=True)
        for array, name in zip(data, NAMES):
            _atomic(self._path(block, f"{name}.npy"), lambda f, a=array: np.save(f, a))
        _atomic(self._path(block, "errors.json"), lambda f: f.write(json.dumps(errors).encode()))
        _atomic(self._path(block, "index.npy"), lambda f: np.save(f, index))
        return sum(array.nbytes for array in data) + index.nbytes

    def clips(self, rows):
        """Each row's samples (a read-only view, int16 or float32 [N]), or the ValueError its file gave."""
        out = []
        for row in np.asarray(rows, dtype=np.int64):
            block, position = divmod(int(row), BLOCK_ROWS)
            index, data, errors = self._open(block)
            kind, offset, length = index[position]
            out.append(ValueError(errors[str(position)]) if kind < 0 else data[kind][offset:offset + length])
        return out

    def _open(self, block):
        if block not in self.blocks:
            if not self._path(block, "index.npy").exists():
                raise ValueError(f"audio store block {self._path(block, 'index.npy')} is missing; rerun to refill it")
            data = [np.load(self._path(block, f"{name}.npy"), mmap_mode="r") for name in NAMES]
            self.blocks[block] = (np.load(self._path(block, "index.npy")), data,
                                  json.loads(self._path(block, "errors.json").read_text()))
        return self.blocks[block]


class _BlockFill(torch.utils.data.Dataset):
    """Item b: decode and write block `blocks[b]` of the store (in a DataLoader worker); returns its bytes."""

    def __init__(self, store, blocks):
        self.store, self.blocks = store, blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, index):
        block = self.blocks[index]
        return self.store.write(block, self.store.decode(block))


def prepared_store(accelerator, table, rows, root, num_workers, desc="audio"):
    """The AudioStore of `table` under `root` with every block holding `rows` filled (each process fills its
    share), or None when `root` is None or the store would not fit the disk (said in one line)."""
    if root is None:
        return None
    store = AudioStore(root, table)
    todo, fits = store.missing(rows), [True]
    if todo and accelerator.is_main_process:
        first = store.decode(todo[0])
        rows_left = min(len(table), len(store.missing(np.arange(len(table)))) * BLOCK_ROWS)
        needed = _bytes(first) / len(first[0]) * rows_left  # the whole table's missing blocks, at this block's rate
        store.directory.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(store.directory.parent).free
        fits = [needed <= free - RESERVE_BYTES]
        if fits[0]:
            store.write(todo[0], first)
        else:
            tqdm.write(f"{desc}: the audio store would need ~{needed / 1e9:.1f} GB but {root} has "
                       f"{free / 1e9:.1f} GB free; decoding on every pass instead (--audio-store DIR or none)")
    if not broadcast_object_list(fits)[0]:
        return None
    accelerator.wait_for_everyone()
    todo = store.missing(rows)
    if todo:
        mine = todo[accelerator.process_index::accelerator.num_processes]
        loader = torch.utils.data.DataLoader(_BlockFill(store, mine), batch_size=None, num_workers=num_workers)
        for _ in tqdm(loader, total=len(mine), desc=f"{desc}: into the audio store", unit="block",
                      disable=not accelerator.is_main_process):
            pass
    accelerator.wait_for_everyone()
    return store


def _bytes(decoded):
    index, data, _ = decoded
    return sum(array.nbytes for array in data) + index.nbytes
