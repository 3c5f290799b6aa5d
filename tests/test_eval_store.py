"""The prepared-audio store: exact (the embeddings with and without it are equal), read instead of decoding on
later passes, resumable block by block, skipped when the disk lacks the space."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from accelerate import Accelerator
from eval_testing import tiny_cnn14_folder

from fusion_eval import clips as clips_module
from fusion_eval import store as store_module
from fusion_eval.cache import ViewCache
from fusion_eval.clips import read_clip
from fusion_eval.datasource import load_table
from fusion_eval.extract import extract
from fusion_eval.representations import Embedder
from fusion_eval.store import AudioStore, prepared_store
from fusion_eval.tasks import resolve_task

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """Real clips of every kind the store holds: SPCV2 16 kHz 16-bit FLAC (int16 at 16 kHz), FSDD 8 kHz FLAC and
    US8K Ogg (float32, resampled / decoded), and one unreadable file."""
    root = tmp_path_factory.mktemp("store")
    files = (sorted((SHARED / "speech_commands_v2_test" / "audio").rglob("*.flac"))[::400][:8]
             + sorted((SHARED / "fsdd" / "audio").glob("*.flac"))[::300][:6]
             + sorted((SHARED / "urbansound8k_3folds" / "audio").rglob("*.ogg"))[::300][:3])
    (root / "broken.wav").write_bytes(b"not audio" * 100)
    names = [str(path) for path in files] + [str(root / "broken.wav")]
    pd.DataFrame({"file_name": names, "label": [i % 3 for i in range(len(names))],
                  "fold": [1 + i % 2 for i in range(len(names))]}).to_csv(root / "metadata.csv", index=False)
    table = load_table(resolve_task(str(root), unit_sec=1.0, fold_column="fold"), root, 16000)
    return root, table, Embedder(str(tiny_cnn14_folder(root / "model")), sweep=True)


def run(task, cache_dir, store_dir, workers=0):
    _, table, embedder = task
    cache = ViewCache(cache_dir, np.arange(len(table)), 8, {})
    extract(Accelerator(cpu=True), embedder, table, cache, "random", 16000, 42, batch_size=4, num_workers=workers,
            skip_bad=True, audio_store=store_dir)
    return {rep.key: cache.load(rep.key) for rep in embedder.representations}, cache.info()


def test_store_is_exact_and_read_instead_of_decoding(task, tmp_path, monkeypatch):
    _, table, _ = task
    plain, info = run(task, tmp_path / "plain", None)
    stored, stored_info = run(task, tmp_path / "first", tmp_path / "audio", workers=2)  # workers write the blocks
    store = AudioStore(tmp_path / "audio", table)
    assert store.missing(np.arange(len(table))) == []
    kinds = np.load(store.directory / "00000.index.npy")[:, 0]
    assert kinds.tolist() == [0] * 8 + [1] * 9 + [-1], "int16 where exact, float32 otherwise, the broken file's error"
    for row, clip in enumerate(store.clips(np.arange(len(table) - 1))):
        np.testing.assert_array_equal(clip, read_clip(table.sources([row])[0], 16000, "x"))
    monkeypatch.setattr(clips_module, "read_clip", lambda *a: pytest.fail("decoded although the store holds it"))
    monkeypatch.setattr(store_module, "read_clip", lambda *a: pytest.fail("decoded although the store holds it"))
    again, again_info = run(task, tmp_path / "second", tmp_path / "audio")
    for key in plain:
        np.testing.assert_array_equal(stored[key], plain[key], err_msg=key)
        np.testing.assert_array_equal(again[key], plain[key], err_msg=key)
    for got in (stored_info, again_info):
        np.testing.assert_array_equal(got[0], info[0])
        np.testing.assert_array_equal(got[1], info[1])
    assert info[1].tolist() == [True] * 17 + [False]


def test_store_resumes_at_the_missing_block(task, tmp_path, monkeypatch):
    """Blocks are complete or absent (a leftover temporary file or a block without its index does not count)."""
    _, table, _ = task
    monkeypatch.setattr(store_module, "BLOCK_ROWS", 5)
    store = AudioStore(tmp_path, table)
    store.write(1, store.decode(1))
    (store.directory / "00002.pcm16.npy").write_bytes(b"partial")
    (store.directory / ".00000.index.npy.123.tmp").write_bytes(b"partial")
    assert store.missing(np.arange(len(table))) == [0, 2, 3]
    decoded = []
    monkeypatch.setattr(store_module.AudioStore, "decode",
                        lambda self, block, original=AudioStore.decode: decoded.append(block) or original(self, block))
    filled = prepared_store(Accelerator(cpu=True), table, np.arange(len(table)), tmp_path, 0)
    assert sorted(decoded) == [0, 2, 3] and filled.missing(np.arange(len(table))) == []
    whole = AudioStore(tmp_path / "whole", table)
    for block in range(4):
        np.testing.assert_array_equal(np.load(filled.directory / f"{block:05d}.index.npy"), whole.decode(block)[0])


def test_disk_guard_runs_without_the_store(task, tmp_path, monkeypatch, capsys):
    _, table, _ = task
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: type("u", (), {"free": 3 * 2 ** 30})())
    monkeypatch.setattr(store_module, "RESERVE_BYTES", 3 * 2 ** 30 - 10_000)  # 10 kB left: far too small
    assert prepared_store(Accelerator(cpu=True), table, np.arange(len(table)), tmp_path / "audio", 0, "t") is None
    said = capsys.readouterr()
    assert "t: the audio store would need ~0.0 GB" in said.out + said.err and "decoding on every pass" in said.out + said.err
    assert not list((tmp_path / "audio").rglob("*.npy")), "nothing written"
    plain, _ = run(task, tmp_path / "plain", None)
    guarded, _ = run(task, tmp_path / "guarded", tmp_path / "audio")
    for key in plain:
        np.testing.assert_array_equal(guarded[key], plain[key])
