"""On-disk embedding cache, in chunks so an interrupted extraction resumes where it stopped.

One directory per (model, data, clip rule, rows): `meta.json`, then per chunk c of `chunk_size` rows
`c.info.npz` (rows, lengths, ok) and one `c.<representation>.npy` [rows, D] per representation.
Files are written to a temporary name and renamed, so a chunk is either complete or absent.

The probe reads a representation lazily (`ViewCache.embeddings`): rows are gathered from the chunk
files on demand, so its memory does not grow with the number of clips.
"""

import hashlib
import json
import os
import weakref
from pathlib import Path

import numpy as np


def digest(*parts):
    """Short stable hash of JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


class ViewCache:
    """Embeddings of `rows` (sorted row ids of a TaskTable) under one clip rule, at `directory`."""

    def __init__(self, directory, rows, chunk_size, meta):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.directory = Path(directory)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.chunk_size = chunk_size
        self.meta = meta

    @property
    def num_chunks(self):
        return -(-len(self.rows) // self.chunk_size)

    def chunk_rows(self, chunk):
        return self.rows[chunk * self.chunk_size:(chunk + 1) * self.chunk_size]

    def _path(self, chunk, what):
        return self.directory / f"{chunk:05d}.{what}"

    def create(self):
        """Make the directory and its meta.json (call on one process)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = self.directory / "meta.json"
        if not meta.exists():
            _atomic(meta, lambda f: f.write(json.dumps(self.meta, indent=1, default=str).encode()))

    def missing(self, keys):
        """Chunks lacking their info file or any representation in `keys`."""
        return [
            chunk for chunk in range(self.num_chunks)
            if not self._path(chunk, "info.npz").exists() or any(not self._path(chunk, f"{k}.npy").exists() for k in keys)
        ]

    def write(self, chunk, rows, lengths, ok, embeddings):
        """Store one chunk: embeddings {key: [n, D]} for exactly `chunk_rows(chunk)`, in that order."""
        if not np.array_equal(rows, self.chunk_rows(chunk)):
            raise ValueError(f"chunk {chunk}: got rows {rows[:5]}..., expected {self.chunk_rows(chunk)[:5]}...")
        for key, values in embeddings.items():
            if not self._path(chunk, f"{key}.npy").exists():
                _atomic(self._path(chunk, f"{key}.npy"), lambda f, v=values: np.save(f, np.asarray(v, np.float32)))
        _atomic(self._path(chunk, "info.npz"), lambda f: np.savez(f, rows=rows, lengths=lengths, ok=ok))

    def info(self):
        """(lengths, ok) of every row, in `rows` order."""
        parts = [np.load(self._path(c, "info.npz")) for c in range(self.num_chunks)]
        return (np.concatenate([p["lengths"] for p in parts]) if parts else np.zeros(0, np.int64),
                np.concatenate([p["ok"] for p in parts]) if parts else np.zeros(0, bool))

    def load(self, key):
        """[len(rows), D] float32 embeddings of one representation."""
        return np.concatenate([np.load(self._path(c, f"{key}.npy")) for c in range(self.num_chunks)])

    def embeddings(self, key):
        """The [len(rows), D] embeddings of one representation as a lazy `CachedEmbeddings` (nothing read yet)."""
        return CachedEmbeddings([self._path(c, f"{key}.npy") for c in range(self.num_chunks)], self.chunk_size,
                                len(self.rows))


class CachedEmbeddings:
    """A lazily read concatenation of chunk files [chunk_size, D] (the last may be shorter): an array
    [n, D] float32 whose rows are read from disk only when indexed, `embeddings[positions]` -> a new
    array [len(positions), D] in the order given.

    Rows are read with positional reads (`os.preadv`) at the data offset `np.load(mmap_mode="r")`
    reports, a run of consecutive rows in one read, into memory the caller owns. Not through a memory
    map: Linux maps large page-cache folios whole, so touching one 24 KiB row of a mapped file made
    hundreds of KiB resident here, and random mini-batches over a mapped cache held the whole file in
    the process's RSS (benchmarks/results/probe_memory.md); positional reads keep it at the batch.
    Raises ValueError naming the file when a chunk is not float32 [rows, D] of the expected size.
    """

    MAX_OPEN_FILES = 128

    def __init__(self, paths, chunk_size, length):
        self.paths = [Path(p) for p in paths]
        self.chunk_size = chunk_size
        self.layout = [None] * len(self.paths)  # (byte offset of the data, bytes per row) of each chunk file
        self.files = {}  # chunk -> open descriptor, least recently used first
        weakref.finalize(self, _close_all, self.files)
        self.shape = (length, 0)
        if self.paths:
            self.shape = (length, self._layout(0)[1] // 4)
        self.dtype = np.dtype(np.float32)

    def __len__(self):
        return self.shape[0]

    def _layout(self, chunk):
        """Checks chunk's .npy header once (float32, C order, [rows of the chunk, D]); nothing of its data is read."""
        if self.layout[chunk] is None:
            path = self.paths[chunk]
            if not path.exists():
                raise ValueError(f"embedding cache file {path} is missing; re-run the extraction")
            mapped = np.load(path, mmap_mode="r")
            rows = min(self.chunk_size, len(self) - chunk * self.chunk_size)
            width = self.shape[1] if chunk else mapped.shape[-1]
            if mapped.dtype != np.float32 or not mapped.flags.c_contiguous or mapped.shape != (rows, width):
                raise ValueError(f"embedding cache file {path} holds {mapped.dtype} {mapped.shape}, expected float32 "
                                 f"[{rows}, {width}]; delete the cache directory to re-extract")
            self.layout[chunk] = (mapped.offset, width * 4)
        return self.layout[chunk]

    def _descriptor(self, chunk):
        handle = self.files.pop(chunk, None)  # re-inserted last: the dict's order is least recently used first
        if handle is None:
            if len(self.files) >= self.MAX_OPEN_FILES:
                os.close(self.files.pop(next(iter(self.files))))
            handle = os.open(self.paths[chunk], os.O_RDONLY)
        self.files[chunk] = handle
        return handle

    def __getitem__(self, positions):
        positions = np.asarray(positions, dtype=np.int64)
        if positions.ndim != 1 or (len(positions) and (positions.min() < 0 or positions.max() >= len(self))):
            raise IndexError(f"positions must be a 1-d array of row numbers in [0, {len(self)})")
        out = np.empty((len(positions), self.shape[1]), np.float32)
        chunks, offsets = np.divmod(positions, self.chunk_size)
        breaks = np.flatnonzero((np.diff(chunks) != 0) | (np.diff(offsets) != 1)) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(positions)]):
            chunk = int(chunks[start])
            data_offset, row_bytes = self._layout(chunk)
            first = data_offset + int(offsets[start]) * row_bytes
            target, done = memoryview(out[start:stop]).cast("B"), 0
            while done < len(target):  # a read may return less than asked (over 2 GiB at once, or a truncated file)
                got = os.preadv(self._descriptor(chunk), [target[done:]], first + done)
                if got == 0:
                    raise ValueError(f"embedding cache file {self.paths[chunk]} is truncated; delete it to re-extract")
                done += got
        return out

    def close(self):
        """Close the open chunk files (later reads open them again)."""
        _close_all(self.files)


class RowSelection:
    """Rows picked from lazily read arrays: row i is `sources[source[i]][position[i]]`. Indexing with
    positions returns a new float32 array [len(positions), D], reading only those rows."""

    def __init__(self, sources, source, position):
        self.sources = sources
        self.source, self.position = np.asarray(source), np.asarray(position)
        self.shape = (len(self.position), sources[0].shape[1])
        self.dtype = np.dtype(np.float32)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, positions):
        positions = np.asarray(positions, dtype=np.int64)
        which = self.source[positions]
        if len(which) and (which == which[0]).all():  # one source: read straight into the result
            return self.sources[which[0]][self.position[positions]]
        out = np.empty((len(positions), self.shape[1]), np.float32)
        for index, source in enumerate(self.sources):
            mask = which == index
            if mask.any():
                out[mask] = source[self.position[positions[mask]]]
        return out


def _close_all(files):
    for handle in files.values():
        os.close(handle)
    files.clear()


def _atomic(path, write):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        write(handle)
    os.replace(temporary, path)
