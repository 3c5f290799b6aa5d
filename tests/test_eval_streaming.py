"""fusion-eval --streaming on a local parquet folder of real clips: the same results as without it, nothing but
the embedding cache written, and a run killed with SIGKILL resumes to the same cache."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from datasets import Audio, ClassLabel, Dataset
from eval_testing import tiny_cnn14_folder

from fusion_eval.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    """200 FSDD clips (8 kHz FLAC, embedded as bytes) as data/{train,test}-*.parquet, and a tiny CNN14 folder."""
    root = tmp_path_factory.mktemp("streaming")
    meta = pd.read_csv(SHARED / "fsdd" / "metadata.csv").iloc[::15].reset_index(drop=True)
    (root / "pq" / "data").mkdir(parents=True)
    for split in ("train", "test"):
        part = meta[meta.split == split]
        audio = [{"bytes": (SHARED / "fsdd" / name).read_bytes(), "path": Path(name).name} for name in part.file_name]
        dataset = Dataset.from_dict({"audio": audio,
                                     "label": part.label.tolist(), "speaker": part.speaker.tolist()})
        dataset = dataset.cast_column("audio", Audio(decode=False)).cast_column("label", ClassLabel(names=list("0123456789")))
        dataset.to_parquet(str(root / "pq" / "data" / f"{split}-00000-of-00001.parquet"))
    assert pq.read_table(root / "pq" / "data" / "test-00000-of-00001.parquet")["audio"][0]["bytes"].as_py()[:4] == b"fLaC"
    tiny_cnn14_folder(root / "model")
    return root, len(meta)


def arguments(root, name, *extra):
    return ["--model", str(root / "model"), "--task", str(root / "pq"), "--unit-sec", "1.0", "--output",
            str(root / f"out-{name}"), "--cache-dir", str(root / f"cache-{name}"), "--seeds", "42", "43",
            "--chunk-size", "16", "--batch-size", "8", "--num-workers", "0", *extra]


def results(root, name):
    return json.loads((root / f"out-{name}" / "results.json").read_text())["tasks"]["pq"]


def caches(root, name):
    """{view folder name: {file name: array}} of a run's embedding cache."""
    found = {}
    for path in sorted((root / f"cache-{name}").glob("*/*/*/*.npy")) + sorted((root / f"cache-{name}").glob("*/*/*/*.npz")):
        arrays = np.load(path)
        found.setdefault(path.parent.name, {})[path.name] = (
            {k: arrays[k] for k in arrays.files} if path.suffix == ".npz" else arrays)
    return found


def test_streaming_equals_the_downloaded_run_and_writes_only_the_cache(parquet, monkeypatch):
    root, clips = parquet
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", root / "hf-plain")  # read when a dataset is loaded
    main(arguments(root, "plain"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", root / "hf-streamed")
    main(arguments(root, "streamed", "--streaming"))
    plain, streamed = results(root, "plain"), results(root, "streamed")
    assert streamed["clips"] == plain["clips"] == clips and "streamed" in streamed["data"]["route"]
    for key, rep in plain["representations"].items():
        assert streamed["representations"][key]["seeds"] == rep["seeds"], key  # every seed's and run's accuracy
    written = [p for p in (root / "hf-streamed").rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert not written, f"streaming wrote {written[:3]} besides lock files"
    assert list((root / "hf-plain").rglob("*.arrow")), "the non-streamed run prepares an Arrow copy"
    assert (root / "cache-plain" / "audio").is_dir() and not (root / "cache-streamed" / "audio").exists()
    views_plain, views_streamed = caches(root, "plain"), caches(root, "streamed")
    assert len(views_plain) == len(views_streamed) == 2
    for plain_view, streamed_view in zip(sorted(views_plain.values(), key=len), sorted(views_streamed.values(), key=len)):
        for name, array in plain_view.items():
            if name.endswith(".npy"):
                np.testing.assert_array_equal(streamed_view[name], array, err_msg=name)


SLOW_RUN = """import sys, time
import fusion_eval.representations as representations
embed = representations.Embedder.embed
representations.Embedder.embed = lambda self, features: (time.sleep(0.3), embed(self, features))[1]
from fusion_eval.cli import main
main(sys.argv[1:])
"""


def test_streaming_resumes_after_kill_9(parquet, tmp_path):
    root, clips = parquet
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "HF_DATASETS_CACHE": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-c", SLOW_RUN, *arguments(root, "killed", "--streaming")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((root / "cache-killed").glob("*/*/*/*.info.npz"))) < 2:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list((root / "cache-killed").glob("*/*/*/*.info.npz")))
    assert not [p for p in (tmp_path / "hf").rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert 2 <= done < 3 + clips // 16, done
    assert not (root / "out-killed" / "results.json").exists()
    subprocess.run(command[:2] + ["from fusion_eval.cli import main; import sys; main(sys.argv[1:])"] + command[3:],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    if not (root / "out-streamed").exists():
        main(arguments(root, "streamed", "--streaming"))
    assert results(root, "killed")["representations"] == {
        key: {**rep, "probe_seconds": results(root, "killed")["representations"][key]["probe_seconds"]}
        for key, rep in results(root, "streamed")["representations"].items()}
    killed, whole = caches(root, "killed"), caches(root, "streamed")
    assert killed.keys() == whole.keys()
    for view, files in whole.items():
        assert killed[view].keys() == files.keys(), view
        for name, array in files.items():
            if name.endswith(".npy"):
                np.testing.assert_array_equal(killed[view][name], array, err_msg=name)
            else:
                for key in array:
                    np.testing.assert_array_equal(killed[view][name][key], array[key], err_msg=f"{name} {key}")
