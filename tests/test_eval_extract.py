"""Extraction: cache hits and misses, resuming an interrupted run, and 2 processes storing what 1 stores."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from eval_testing import extract_synthetic, synthetic_folder, tiny_cnn14_folder

from fusion_eval.cache import ViewCache
from fusion_eval.representations import Embedder


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    synthetic_folder(root / "tones", clips_per_fold=6, folds=(1, 2, 3))
    tiny_cnn14_folder(root / "model")
    return root


def run(root, cache_dir, embedder=None):
    """Extract every row of the synthetic folder in 1 process; returns (clips computed, cache)."""
    return extract_synthetic(root, cache_dir, Accelerator(), embedder)


class CountingEmbedder(Embedder):
    """Counts clips sent through the model, and fails once `fail_after` batches have gone through."""

    def __init__(self, *args, fail_after=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clips, self.batches, self.fail_after = 0, 0, fail_after

    def embed(self, features):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.batches += 1
        self.clips += len(features["input_values"])
        return super().embed(features)


def test_cache_hit_miss_and_new_representations(paths, tmp_path):
    embedder = CountingEmbedder(str(paths / "model"))
    computed, cache = run(paths, tmp_path, embedder)
    assert computed == 18 and embedder.clips == 18
    fusion = cache.load("fusion_3_6")
    assert fusion.shape == (18, 8 * 8 + 8 * 2)  # tiny blocks 3 and 6: 8 channels x 8 and x 2 mel bins
    computed, _ = run(paths, tmp_path, embedder)
    assert computed == 0 and embedder.clips == 18, "a second run reads everything from the cache"

    sweep = CountingEmbedder(str(paths / "model"), sweep=True)
    computed, cache = run(paths, tmp_path, sweep)
    assert computed == 18 and sweep.clips == 18, "new representations (the layers) are missing in every chunk"
    np.testing.assert_array_equal(cache.load("fusion_3_6"), fusion)
    np.testing.assert_allclose(np.concatenate([cache.load("layer_3"), cache.load("layer_6")], 1), fusion, rtol=1e-6)


def test_cache_key_follows_weights_and_config(paths):
    embedder = Embedder(str(paths / "model"))
    assert Embedder(str(paths / "model")).cache_key() == embedder.cache_key()
    other = Embedder(str(paths / "model"), layers=[6, 2])
    assert other.model.config.fusion_layers == [2, 6] and [r.key for r in other.representations] == ["fusion_2_6", "plain"]
    assert other.cache_key() != embedder.cache_key()
    with torch.no_grad():
        embedder.model.conv_block1.conv1.weight[0, 0, 0, 0] += 1e-3
    assert Embedder(str(paths / "model")).cache_key() != embedder.cache_key()


def test_resume_after_interruption(paths, tmp_path, capsys):
    _, reference = run(paths, tmp_path / "reference")
    broken = CountingEmbedder(str(paths / "model"), fail_after=5)  # 5 batches of 2 fill chunks 0-1 (5 clips each)
    with pytest.raises(KeyboardInterrupt):
        run(paths, tmp_path / "resumed", broken)
    assert ViewCache(tmp_path / "resumed", np.arange(18), 5, {}).missing(["fusion_3_6", "plain"]) == [2, 3]
    resumed = CountingEmbedder(str(paths / "model"))
    capsys.readouterr()
    computed, cache = run(paths, tmp_path / "resumed", resumed)
    assert computed == 8 and resumed.clips == 8, "only chunks 2-3 (5 + 3 clips) are encoded again"
    assert "resuming, 10 of 18 clips already in" in capsys.readouterr().out
    for key in ("fusion_3_6", "plain"):
        np.testing.assert_array_equal(cache.load(key), reference.load(key))
    np.testing.assert_array_equal(cache.info()[0], reference.info()[0])


def test_two_processes_store_what_one_stores(paths, tmp_path):
    """torchrun with 2 CPU processes (gloo). Chunks of 5 clips in batches of 2 leave uneven last
    batches, which Accelerate pads and `gather_for_metrics` must trim."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(Path(__file__).with_name("eval_two_process_worker.py")), str(paths), str(tmp_path / "two")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _, single = run(paths, tmp_path / "one")
    double = ViewCache(tmp_path / "two", np.arange(18), 5, {})
    assert double.missing(["fusion_3_6", "plain"]) == []
    lengths, ok = double.info()
    np.testing.assert_array_equal(lengths, single.info()[0])
    assert ok.all()
    for key in ("fusion_3_6", "plain"):
        # Same rows in the same order; values agree to float32 noise: a padded last batch pairs a clip
        # with another one, and convolution kernels round differently for a batch of 2 than of 1.
        expected = single.load(key)
        np.testing.assert_allclose(double.load(key), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert not np.array_equal(single.load("plain")[:6], single.load("plain")[6:12]), "rows must differ to test order"
