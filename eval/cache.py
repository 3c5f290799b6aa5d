"""On-disk embedding cache, in chunks so an interrupted extraction resumes where it stopped.

One directory per (model, data, clip rule, rows): `meta.json`, then per chunk c of `chunk_size` rows
`c.info.npz` (rows, lengths, ok) and one `c.<representation>.npy` [rows, D] per representation.
Files are written to a temporary name and renamed, so a chunk is either complete or absent.
"""

import hashlib
import json
import os
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


def _atomic(path, write):
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        write(handle)
    os.replace(temporary, path)
