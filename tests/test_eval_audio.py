"""Clip rules: zero-pad at the end, crop from the start (test) or at a seeded random offset (train)."""

import numpy as np
import pytest
import torch
from datasets import Audio, Dataset
from eval_testing import synthetic_folder, tone

from fusion_eval.clips import ClipCollator, ClipDataset, crop_offset, fix_length
from fusion_eval.datasource import load_table
from fusion_eval.tasks import resolve_task


def test_short_clip_is_zero_padded_at_the_end():
    wave = np.arange(1, 6, dtype=np.float32)
    fixed = fix_length(wave, 8)
    np.testing.assert_array_equal(fixed, [1, 2, 3, 4, 5, 0, 0, 0])
    assert fixed.dtype == np.float32


def test_long_clip_window():
    wave = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(wave, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(fix_length(wave, 4, offset=5), [5, 6, 7, 8])


def test_collator_pads_any_float32_layout():
    """Waves of different lengths and memory layouts (reversed, strided) -> one right-padded float32 batch."""
    waves = [np.arange(4, dtype=np.float32)[::-1], np.arange(6, dtype=np.float64)[::2], np.ones(5, np.float32)]
    batch = ClipCollator()([{"row": r, "wave": w, "length": len(w), "ok": True} for r, w in enumerate(waves)])
    np.testing.assert_array_equal(batch["waves"].numpy(), [[3, 2, 1, 0, 0], [0, 2, 4, 0, 0], [1, 1, 1, 1, 1]])
    assert batch["waves"].dtype == torch.float32 and batch["samples"].tolist() == [4, 3, 5]


def test_offsets_follow_the_view():
    assert crop_offset(100, 40, "start", 42, row=3) == 0
    assert crop_offset(40, 40, "random", 42, row=3) == 0, "a clip that fits is never cropped"
    assert crop_offset(30, 40, "random", 42, row=3) == 0
    offsets = [crop_offset(100, 40, "random", 42, row) for row in range(400)]
    assert min(offsets) == 0 and max(offsets) == 59, "EVAR's randint(length - unit): 0 .. length - unit - 1"
    assert offsets == [crop_offset(100, 40, "random", 42, row) for row in range(400)], "seeded per row"
    assert offsets != [crop_offset(100, 40, "random", 43, row) for row in range(400)], "the crop seed matters"
    with pytest.raises(ValueError, match="view must be one of"):
        crop_offset(100, 40, "middle", 42, 0)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tones")
    synthetic_folder(folder, clips_per_fold=6, folds=(1,), rate=8000, durations=(0.6, 1.7))
    task = resolve_task(str(folder), unit_sec=1.0)
    return load_table(task, folder.parent, 16000)


def test_dataset_decodes_resamples_and_fixes(table):
    """8 kHz files come back at 16 kHz (a tone stays the same tone), padded or cropped to one second."""
    unit = 16000
    start = ClipDataset(table, np.arange(6), "start", unit, crop_seed=42)
    shuffled = ClipDataset(table, np.arange(6), "random", unit, crop_seed=42)
    for index in range(6):
        item, moved = start[index], shuffled[index]
        seconds = 0.6 if index < 3 else 1.7
        assert item["ok"] and item["length"] == pytest.approx(seconds * 16000, abs=16)
        assert item["wave"].shape == (unit,) and moved["wave"].shape == (unit,)
        freq = {"low": 220, "mid": 440, "high": 880}[table.labels[index]] * 1.01
        expected = tone(freq, seconds, 16000, phase=index)[:unit]
        inner = slice(200, len(expected) - 200)  # away from the resampler's edge effects
        np.testing.assert_allclose(item["wave"][inner], expected[inner], atol=0.01)
        if seconds < 1:
            assert not item["wave"][len(expected):].any(), "padding is zeros at the end"
            np.testing.assert_array_equal(item["wave"], moved["wave"])
        else:
            offset = crop_offset(item["length"], unit, "random", 42, index)
            assert offset > 0
            full = table.wave(index)
            np.testing.assert_array_equal(moved["wave"], full[offset:offset + unit])


def test_unreadable_file_is_named_or_skipped(table, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all" * 50)
    broken = type(table)(Dataset.from_dict({"audio": [str(bad)]}).cast_column("audio", Audio(decode=False)),
                         ["broken.wav"], np.array(["x"]), None, np.array([1]), str(tmp_path), "k", 16000)
    with pytest.raises(ValueError, match="cannot decode audio file broken.wav.*--skip-bad"):
        ClipDataset(broken, [0], "start", 16000, 42)[0]
    item = ClipDataset(broken, [0], "start", 16000, 42, skip_bad=True)[0]
    assert not item["ok"] and item["wave"].shape == (16000,) and not item["wave"].any()
