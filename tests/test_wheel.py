"""The package as users get it: a wheel built with `pip wheel`, installed into a fresh venv, runs every
command from a folder outside the checkout (hub list, hub build with --results, fusion-eval, fusion-embed,
convert --help): what ships as package data (hub/configs, hub/cards) and the entry points are really there."""

import csv
import json
import os
import shutil
import subprocess
import sys

from huggingface_hub import ModelCard

from conftest import REPO, shared_path

FSDD_CLIPS = 36  # 8 train + 4 test clips of each of 3 digits


def fsdd_subset(folder):
    """A local audiofolder task of FSDD digits 0-2 (the real 8 kHz files, copied)."""
    source = shared_path("data", "fsdd")
    with open(source / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = []
    for label in "012":
        for split, count in (("train", 8), ("test", 4)):
            chosen += [row for row in rows if row["label"] == label and row["split"] == split][:count]
    (folder / "audio").mkdir(parents=True)
    for row in chosen:
        shutil.copy(source / row["file_name"], folder / row["file_name"])
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file_name", "label", "split"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(chosen)
    return folder


def test_wheel_in_a_fresh_venv_runs_every_command(tmp_path):
    weights = shared_path("weights")
    work = tmp_path / "work"  # outside the checkout: nothing can come from the working tree
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"),
               FUSION_EVAL_CACHE=str(tmp_path / "cache"))

    def run(*command, cwd=work):
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    run(sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
        cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("modeling_fusion-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", str(venv))
    python, bin_dir = str(venv / "bin" / "python"), venv / "bin"
    run(python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-index", str(wheel))
    where = json.loads(run(python, "-c", "import json, modeling_fusion, fusion_eval; "
                                        "print(json.dumps([modeling_fusion.__file__, fusion_eval.__file__]))"))
    assert all(path.startswith(str(venv)) for path in where), where

    listing = run(python, "-m", "modeling_fusion.hub", "list")
    assert "efficientat-mn04-as-fusion-12-14" in listing and len(listing.strip().splitlines()) == 7
    labels = str(weights / "audioset_labels.csv")
    run(python, "-m", "modeling_fusion.hub", "build", "efficientat-mn04-as-fusion-12-14", "--checkpoint",
        str(weights / "efficientat_mn04_as.pt"), "--output", "mn04", "--labels", labels)
    task = fsdd_subset(work / "digits")
    table = run(str(bin_dir / "fusion-eval"), "--model", "mn04", "--task", str(task), "--unit-sec", "1.0",
                "--seeds", "42", "--output", "runs/mn04", "--num-workers", "0")
    assert "EfficientAT-Fusion#12#14" in table
    run(python, "-m", "modeling_fusion.hub", "build", "efficientat-mn04-as-fusion-12-14", "--checkpoint",
        str(weights / "efficientat_mn04_as.pt"), "--output", "hub/mn04", "--labels", labels,
        "--results", "runs/mn04/results.json")
    card = ModelCard.load(work / "hub" / "mn04" / "README.md")
    results = json.loads((work / "runs" / "mn04" / "results.json").read_text())
    fusion = results["tasks"]["digits"]["representations"]["fusion_12_14"]
    assert [(r.dataset_type, r.metric_value) for r in card.data.eval_results] == [
        (results["tasks"]["digits"]["dataset_id"], round(fusion["mean"] * 100, 2))]
    assert (work / "runs" / "mn04" / "results.md").read_text().splitlines()[2] in card.text  # the fusion's row

    run(str(bin_dir / "fusion-embed"), "hub/mn04", str(task), "--output", "embeddings.npz", "--batch-size", "16")
    out = run(python, "-c", "import numpy as np; saved = np.load('embeddings.npz'); "
                            "print(saved['embeddings'].shape, sorted(map(str, set(saved['meta_label']))))")
    assert out.strip() == f"({FSDD_CLIPS}, 640) ['0', '1', '2']"
    assert "efficientat" in run(python, "-m", "modeling_fusion.convert", "--help")
