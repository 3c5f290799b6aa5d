"""Clip rules: zero-pad at the end, crop from the start (test) or at a seeded random offset (train)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from datasets import Audio, Dataset
from eval_testing import synthetic_folder, tone

from fusion_eval.clips import PCM16_SCALE, ClipDataset, batch_to_float, crop_offset, fix_length, read_clip
from fusion_eval.datasource import load_table
from fusion_eval.tasks import resolve_task
from modeling_fusion.audio_input import load_audio


def test_short_clip_is_zero_padded_at_the_end():
    wave = np.arange(1, 6, dtype=np.float32)
    fixed = fix_length(wave, 8)
    np.testing.assert_array_equal(fixed, [1, 2, 3, 4, 5, 0, 0, 0])
    assert fixed.dtype == np.float32


def test_long_clip_window():
    wave = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(wave, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(fix_length(wave, 4, offset=5), [5, 6, 7, 8])


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


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_pcm16_source_is_bit_identical_to_load_audio(tmp_path, subtype):
    """16-bit WAV/FLAC at the model's rate (real SPCV2 FLAC files, and a WAV written from them) ship as the file's
    int16; int16 * 2**-15 is load_audio's float32 bit for bit. Other files (float WAV here) give load_audio's float32."""
    files = sorted((SHARED / "speech_commands_v2_test" / "audio").rglob("*.flac"))[::100][:40]
    assert len(files) == 40
    wav = tmp_path / "clip.wav"
    soundfile.write(wav, soundfile.read(files[-1], dtype="float32")[0], 16000, subtype=subtype)
    sources = [{"path": str(path), "bytes": None} for path in files[:39]] + [{"path": None, "bytes": wav.read_bytes()}]
    if subtype == "FLOAT":
        sources = sources[-1:]
    for source in sources:
        reference = load_audio(source, 16000)
        clip = read_clip(source, 16000, "clip")
        assert clip.dtype == (np.int16 if subtype == "PCM_16" else np.float32)
        as_float = batch_to_float(torch.from_numpy(clip)).numpy()
        assert as_float.dtype == np.float32 and np.array_equal(as_float, reference), source["path"]
    assert np.abs(reference).max() > 0.01  # not a silent clip


def test_pcm16_elsewhere_falls_back_to_load_audio():
    """At another rate than the model's (FSDD is 8 kHz) or from Ogg, the clip is load_audio's float32 (resampled)."""
    for path in (next((SHARED / "fsdd" / "audio").glob("*.flac")),
                 next((SHARED / "urbansound8k_3folds" / "audio").rglob("*.ogg"))):
        source = {"path": str(path), "bytes": None}
        clip = read_clip(source, 16000, "clip")
        assert clip.dtype == np.float32 and np.array_equal(clip, load_audio(source, 16000)), path


def test_batch_fetch_equals_items_and_keeps_pcm16(table, tmp_path):
    """dataset[[i, j, ...]] (what the DataLoader calls) holds each item's wave, in order; all-int16 batches stay int16
    and become float32 exactly on `batch_to_float`; a mixed batch is float32 with the int16 clips scaled the same way."""
    dataset = ClipDataset(table, np.arange(6), "random", 16000, crop_seed=42)
    batch = dataset.__getitems__([4, 0, 5])
    assert batch["waves"].dtype == torch.float32 and batch["rows"].tolist() == [4, 0, 5]  # 8 kHz files: resampled
    for position, index in enumerate([4, 0, 5]):
        np.testing.assert_array_equal(batch["waves"][position].numpy(), dataset[index]["wave"])
    assert batch["lengths"].tolist() == [dataset[i]["length"] for i in (4, 0, 5)] and batch["samples"].tolist() == [16000] * 3

    folder = tmp_path / "pcm"
    (folder / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = []
    for index, (seconds, subtype) in enumerate([(0.5, "PCM_16"), (1.5, "PCM_16"), (1.2, "FLOAT")]):
        names.append(f"audio/{index}.wav")
        soundfile.write(folder / names[-1], 0.2 * rng.standard_normal(int(16000 * seconds)), 16000, subtype=subtype)
    pd.DataFrame({"file_name": names, "label": ["a", "b", "a"], "fold": [1, 1, 1]}).to_csv(folder / "metadata.csv", index=False)
    pcm_table = load_table(resolve_task(str(folder), unit_sec=1.0, fold_column="fold"), tmp_path, 16000)
    pcm = ClipDataset(pcm_table, np.arange(3), "random", 16000, crop_seed=42)
    pure, mixed = pcm.__getitems__([0, 1]), pcm.__getitems__([0, 1, 2])
    assert pure["waves"].dtype == torch.int16 and mixed["waves"].dtype == torch.float32
    np.testing.assert_array_equal(batch_to_float(pure["waves"]).numpy(), mixed["waves"][:2].numpy())
    offset = crop_offset(24000, 16000, "random", 42, 1)
    expected = np.zeros((3, 16000), np.float32)
    expected[0, :8000] = load_audio(str(folder / names[0]), 16000)
    expected[1] = load_audio(str(folder / names[1]), 16000)[offset:offset + 16000]
    second = crop_offset(19200, 16000, "random", 42, 2)
    expected[2] = load_audio(str(folder / names[2]), 16000)[second:second + 16000]
    np.testing.assert_array_equal(mixed["waves"].numpy(), expected)
    assert PCM16_SCALE * 32768 == 1.0


def test_value_checks_move_to_the_worker(tmp_path):
    """read_clip refuses PCM-scaled float files naming them (the check the extractor made per batch with a host
    sync); inside values_checked() the extractor skips only its value checks, shapes are still checked."""
    from modeling_fusion.audio_input import mono_clips, values_checked

    loud = tmp_path / "loud.wav"
    soundfile.write(loud, np.full(1600, 3000.0), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="loud.wav: float samples reach 3000"):
        read_clip({"path": str(loud), "bytes": None}, 16000, "loud.wav")
    batch = torch.zeros(2, 800)
    batch[1, 5] = float("nan")
    with pytest.raises(ValueError, match="clip 1 contains NaN"):
        mono_clips(batch, 16000, 16000, 400, "x", keep_tensors=True)
    with values_checked():
        assert len(mono_clips(batch, 16000, 16000, 400, "x", keep_tensors=True)) == 2
        with pytest.raises(ValueError, match="clip 0 has 800 samples"):
            mono_clips(batch, 16000, 16000, 1600, "x", keep_tensors=True)
    with pytest.raises(ValueError, match="NaN"):
        mono_clips(batch, 16000, 16000, 400, "x", keep_tensors=True)
