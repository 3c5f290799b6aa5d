"""Extraction with DataLoader workers stores exactly what it stores without; the automatic worker count."""

import numpy as np
import pytest
from accelerate import Accelerator
from eval_testing import synthetic_folder, tiny_cnn14_folder

from fusion_eval import extract as extract_module
from fusion_eval.cache import ViewCache
from fusion_eval.datasource import load_table
from fusion_eval.extract import default_num_workers, extract
from fusion_eval.representations import Embedder
from fusion_eval.tasks import resolve_task


def test_workers_store_identical_embeddings(tmp_path):
    synthetic_folder(tmp_path / "tones", clips_per_fold=4, folds=(1, 2))
    embedder = Embedder(str(tiny_cnn14_folder(tmp_path / "model")), sweep=True)
    table = load_table(resolve_task(str(tmp_path / "tones"), unit_sec=1.0, fold_column="fold"), tmp_path, 16000)
    caches = {}
    for workers in (0, 2):
        cache = ViewCache(tmp_path / f"cache{workers}", np.arange(len(table)), 512, {})
        assert extract(Accelerator(cpu=True), embedder, table, cache, "random", 16000, crop_seed=42, batch_size=3,
                       num_workers=workers) == len(table)
        caches[workers] = cache
    keys = [rep.key for rep in embedder.representations]
    assert len(keys) > 3  # every layer, the fusion and the plain embedding
    for key in keys:
        np.testing.assert_array_equal(caches[2].load(key), caches[0].load(key), err_msg=key)
        assert np.abs(caches[0].load(key)).max() > 0, key


@pytest.mark.parametrize("cores, local_processes, expected", [(1, 1, 0), (2, 1, 0), (3, 1, 2), (16, 1, 8), (16, 2, 7), (4, 4, 0)])
def test_default_num_workers(monkeypatch, cores, local_processes, expected):
    monkeypatch.setattr(extract_module.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_processes))
    assert default_num_workers() == expected
