"""Task specs and routes: the registry's nine paper tasks, `--list-tasks`, and real FSDD clips as a dataset
folder in the Hub's parquet layout, as a cached Hub dataset (the loaded revision in results.json) and as
one unsplit shard joined with a split CSV, each run end to end through fusion-eval."""

import json
import re
import shutil
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from eval_testing import tiny_cnn14_folder

from fusion_eval.cli import build_parser, main
from fusion_eval.datasource import load_table
from fusion_eval.tasks import PAPER_TASKS, TASKS, list_tasks, resolve_task, route
from modeling_fusion.audio_input import load_audio

SHA = "0123456789abcdef0123456789abcdef01234567"
FEATURES = datasets.Features({"audio": datasets.Audio(), "file": datasets.Value("string"),
                              "label": datasets.ClassLabel(names=["zero", "one", "two"])})


def test_every_paper_task_resolves_to_a_route(tmp_path):
    assert [t.title for t in PAPER_TASKS] == ["ESC-50", "US8K", "SPCV2", "VC1", "VF", "CRM-D", "GTZAN", "NSynth", "Surge"]
    for task in PAPER_TASKS:
        assert task.hub_revision is None or re.fullmatch(r"[0-9a-f]{40}", task.hub_revision), task.name
        assert re.search(r"(evar/metadata/\w+\.csv|make_metadata\.py \w+)", task.metadata_how), task.name
        expected = {"esc50": "hub", "us8k": "hub", "gtzan": "hub", "nsynth": "hub"}.get(task.name)
        assert route(task, tmp_path) == expected, task.name
    assert (TASKS["gtzan"].hub_id, TASKS["gtzan"].hub_label_column) == ("confit/gtzan", "genre")
    assert (TASKS["nsynth"].hub_id, TASKS["nsynth"].hub_config) == ("confit/nsynth-parquet", "instrument")
    cremad = TASKS["cremad"]
    assert (cremad.hub_id, cremad.join_column, cremad.label_column) == ("AbstractTTS/CREMA-D", "file", "label")
    assert cremad.split_file_url.endswith("/evar/metadata/cremad.csv") and cremad.hub_revision
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "cremad.csv").write_text("file_name,label,speaker_id,split\n")
    assert route(cremad, tmp_path, tmp_path / "meta") == "hub", "Hub audio + the downloaded split file"
    (tmp_path / "spcv2").mkdir()
    (tmp_path / "meta" / "spcv2.csv").write_text("file_name,label,split\n")
    assert route(TASKS["spcv2"], tmp_path, tmp_path / "meta") == "local", "EVAR layout"
    (tmp_path / "esc50").mkdir()
    assert route(TASKS["esc50"], tmp_path) is None, "a local folder without its metadata.csv stops the run"
    with pytest.raises(ValueError, match="split file .*cremad.csv not found; download it from https://raw"):
        load_table(cremad, tmp_path, 16000)


def test_list_tasks_needs_no_model_and_shows_sources(tmp_path, capsys):
    (tmp_path / "fsdd").mkdir()
    (tmp_path / "fsdd" / "metadata.csv").write_text("file_name,label,split\n")
    main(["--list-tasks", "--data-dir", str(tmp_path)])
    text = capsys.readouterr().out
    assert text == list_tasks(str(tmp_path)) + "\n"
    blocks = {block.split(":")[0]: block for block in text.split("\n\n")}
    assert set(TASKS) <= set(blocks)
    assert "confit/nsynth-parquet [instrument] @ main (unpinned)" in blocks["nsynth"]
    assert f"ashraq/esc50 @ {TASKS['esc50'].hub_revision}" in blocks["esc50"]
    assert "split file" in blocks["cremad"] and "[not found]; download it from" in blocks["cremad"]
    assert "runs from: the local folder" in blocks["fsdd"] and "[found]" in blocks["fsdd"]
    assert "runs from: nothing found yet" in blocks["surge"] and "make_metadata.py surge" in blocks["surge"]
    with pytest.raises(SystemExit):
        main(["--task", "fsdd"])
    assert "required: --model, --output (or --list-tasks)" in capsys.readouterr().err


def test_help_shows_each_default_once():
    text = build_parser().format_help()
    assert "(default: None)" not in text
    options = re.split(r"\n  (?=-)", text)
    assert all(option.count("(default") <= 1 for option in options)
    assert "(default: 32)" in " ".join(text.split())  # --batch-size


def test_resolve_task_specs(tmp_path):
    (tmp_path / "parquet").mkdir()
    assert resolve_task(str(tmp_path / "parquet"), unit_sec=2).dataset_dir == str((tmp_path / "parquet").resolve())
    hub = resolve_task("owner/name@abc123", unit_sec=2)
    assert (hub.hub_id, hub.hub_revision, hub.name) == ("owner/name", "abc123", "owner/name@abc123")
    with pytest.raises(ValueError, match="--unit-sec is required"):
        resolve_task("owner/name")
    with pytest.raises(ValueError, match="--split-file needs --join-column"):
        resolve_task("owner/name", unit_sec=1, split_file="s.csv")
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        resolve_task("nope", unit_sec=1)


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory):
    """66 real FSDD clips (digits 0-2, 2 speakers): takes 5-11 train, 0-3 test, as parquet shards
    data/train-*.parquet + data/test-*.parquet; an unsplit shard of the same rows plus 5 rows more
    (files named clips/<stem>.wav), and a split CSV of the 66 rows (<stem>.flac)."""
    data = shared_path("data", "fsdd")
    frame = pd.read_csv(data / "metadata.csv")
    frame = frame[frame.label.isin([0, 1, 2]) & frame.speaker.isin(["george", "jackson"])]
    train, test, extra = (frame[frame["take"].isin(t)] for t in (range(5, 12), range(0, 4), [20]))
    extra = extra.head(5)
    root = tmp_path_factory.mktemp("parquet")

    def shard(rows, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict({
            "audio": [{"bytes": (data / name).read_bytes(), "path": Path(name).name} for name in rows.file_name],
            "file": [f"clips/{Path(name).stem}.wav" for name in rows.file_name], "label": rows.label.tolist(),
        }, features=FEATURES).to_parquet(path)

    shard(train, root / "split" / "data" / "train-00000-of-00001.parquet")
    shard(test, root / "split" / "data" / "test-00000-of-00001.parquet")
    shard(pd.concat([train, test, extra]), root / "unsplit" / "data" / "train-00000-of-00001.parquet")
    csv = pd.concat([train.assign(split="train"), test.assign(split="test")])
    csv = csv.assign(file_name=[Path(n).name for n in csv.file_name], label=csv.label.map(["zero", "one", "two"].__getitem__))
    csv[["file_name", "label", "split"]].to_csv(root / "split.csv", index=False)
    return {"root": root, "data": data, "rows": pd.concat([train, test]), "model": tiny_cnn14_folder(root / "model")}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return tmp_path / "hf_datasets"


def _run(fsdd, tmp_path, *task_args):
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    main(["--model", str(fsdd["model"]), "--task", *task_args, "--unit-sec", "1.0", "--seeds", "42",
          "--cache-dir", str(tmp_path / "cache"), "--output", str(out), "--batch-size", "33"])
    (task,) = json.loads((out / "results.json").read_text())["tasks"].values()
    task["output"] = out
    return task


def test_parquet_hub_layout_cached_hub_id_and_split_file_end_to_end(fsdd, tmp_path, hf_cache):
    folder = fsdd["root"] / "split"
    table = load_table(resolve_task(str(folder), unit_sec=1.0), tmp_path, 16000)
    rows = fsdd["rows"]
    assert list(table.split) == ["train"] * 42 + ["test"] * 24, "split names become the split column"
    assert list(table.labels) == [["zero", "one", "two"][d] for d in rows.label], "ClassLabel ints -> names"
    for row in (0, 50):  # the shard's bytes decode to the original file's samples
        np.testing.assert_array_equal(table.wave(row), load_audio(fsdd["data"] / rows.file_name.iloc[row], 16000))

    plain = _run(fsdd, tmp_path, str(folder))
    assert plain["clips"] == 66 and plain["runs"] == ["split"]
    assert plain["data"]["route"] == "dataset folder" and set(plain["data"]["fingerprints"]) == {"train", "test"}
    fusion = plain["representations"]["fusion_3_6"]["seeds"]["42"]["runs"][0]
    assert (fusion["train"], fusion["test"]) == (42, 24)

    # The same shards as a Hub dataset in the datasets cache (offline): the loaded commit is recorded.
    built = datasets.load_dataset_builder(str(folder))
    built.download_and_prepare()
    cached = hf_cache / "tester___tiny" / "default" / "0.0.0" / SHA
    cached.mkdir(parents=True)
    for file in Path(built.cache_dir).iterdir():
        shutil.copy(file, cached / file.name.replace(f"{folder.name}-", "tiny-"))
    hub = _run(fsdd, tmp_path, f"tester/tiny@{SHA}")
    assert hub["data"]["revision"] == SHA and hub["data"]["revision_requested"] == SHA
    assert (hub["source"], hub["dataset_id"], hub["data"]["route"]) == ("tester/tiny", "tester/tiny", "Hub")
    assert f"- tester/tiny: Hub `tester/tiny` @ `{SHA}`; 66 clips" in (hub["output"] / "results.md").read_text()
    assert f"revision: {SHA}" in (hub["output"] / "model_index.yaml").read_text()

    # One unsplit shard (5 rows more) + a split CSV joined on the file name (x.wav in the shard, x.flac in the CSV).
    joined = _run(fsdd, tmp_path, str(fsdd["root"] / "unsplit"), "--split-file", str(fsdd["root"] / "split.csv"),
                  "--join-column", "file")
    assert joined["clips"] == 66
    assert (joined["data"]["rows_before_join"], joined["data"]["rows_dropped"]) == (71, 5)
    assert joined["data"]["split_file_rows_unmatched"] == 0
    assert "joined on `file`: 5 of 71 rows not in it, dropped; 66 clips" in (joined["output"] / "results.md").read_text()

    # Same audio, rows, roles and crops by every route: the same embeddings, so the same accuracies.
    for key in ("fusion_3_6", "plain"):
        accuracies = [task["representations"][key]["seeds"]["42"]["accuracy"] for task in (plain, hub, joined)]
        assert accuracies[0] == accuracies[1] == accuracies[2], key
    assert plain["representations"]["fusion_3_6"]["mean"] > 0.5, "3 digits: a random tiny CNN14 beats chance (1/3)"


def test_ctrl_c_exits_with_a_resume_hint(tmp_path, capsys, monkeypatch):
    import fusion_eval.cli as cli

    def interrupted(args, tasks):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "m", "--task", "fsdd", "--output", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert exit_info.value.code == 130
    assert f"interrupted; finished cache chunks are kept in {tmp_path / 'c'}" in capsys.readouterr().err
