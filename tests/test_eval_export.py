"""fusion-eval --export-classifier: the probe as a ForAudioClassification folder predicts what the probe did,
for a model of this package and for a plain transformers encoder (a tiny random wav2vec2 folder)."""

import json
import os

import numpy as np
import pytest
from encoder_testing import save_tiny_encoder
from eval_testing import synthetic_folder, tiny_cnn14_folder

from conftest import run_clean_process
from fusion_eval.cli import main
from fusion_eval.datasource import load_table
from fusion_eval.tasks import resolve_task

# model kind -> (build the folder, --layers, architecture exported)
MODELS = {
    "cnn14": (tiny_cnn14_folder, [], "Cnn14ForAudioClassification"),
    "wav2vec2": (lambda path: save_tiny_encoder("wav2vec2", path), ["--layers", "1", "3"],
                 "EncoderFusionForAudioClassification"),
}


@pytest.mark.parametrize("kind", MODELS)
def test_exported_probe_predicts_like_fusion_eval(kind, tmp_path):
    build, layers, architecture = MODELS[kind]
    synthetic_folder(tmp_path / "tones", clips_per_fold=12, folds=(1, 2, 3))
    build(tmp_path / "model")
    main(["--model", str(tmp_path / "model"), "--task", str(tmp_path / "tones"), "--unit-sec", "1.0",
          "--split-column", "split", "--seeds", "42", "--cache-dir", str(tmp_path / "cache"), *layers,
          "--output", str(tmp_path / "out"), "--export-classifier", str(tmp_path / "probe"),
          "--mixed-precision", "no", "--lr", "1e-3", "--batch-size", "4", "--chunk-size", "8"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {key: results["settings"][key] for key in ("mixed_precision", "lr", "batch_size", "chunk_size")} == {
        "mixed_precision": "no", "lr": 1e-3, "batch_size": 4, "chunk_size": 8}
    export = results["tasks"]["tones"]["export"]
    assert export["folder"] == str(tmp_path / "probe") and export["classes"] == ["high", "low", "mid"]
    assert len(export["test_predictions"]) == 12
    config = json.loads((tmp_path / "probe" / "config.json").read_text())
    assert config["architectures"] == [architecture] and config["probe_clip"]["seconds"] == 1.0
    assert all(oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask()) for path in (tmp_path / "probe").iterdir())

    table = load_table(resolve_task(str(tmp_path / "tones"), unit_sec=1.0, split_column="split"), tmp_path, 16000)
    index = {name: row for row, name in enumerate(table.names)}
    # whole clips (0.6, 1.0 and 1.7 s): the exported pipeline fixes them to the probe's 1 s as fusion-eval did
    clips = [table.wave(index[name]) for name in export["test_files"]]
    assert {len(clip) for clip in clips} == {9600, 16000, 27200}
    np.savez(tmp_path / "clips.npz", *clips)
    assert export["clip"] == {"seconds": 1.0, "crop": "start", "pad": "zeros at the end"}
    script = f"""
    import json, numpy as np
    from transformers import AutoFeatureExtractor, pipeline
    classify = pipeline("audio-classification", model={str(tmp_path / "probe")!r}, trust_remote_code=True)
    with np.load({str(tmp_path / "clips.npz")!r}) as saved:
        clips = [saved[key] for key in saved.files]
    extractor = AutoFeatureExtractor.from_pretrained({str(tmp_path / "probe")!r}, trust_remote_code=True)
    long = next(clip for clip in clips if len(clip) > 16000)
    fixed = None
    if hasattr(extractor, "fixed_clip_seconds"):  # this package's extractors cut clips themselves too
        values = [extractor(x, sampling_rate=16000)["input_values"] for x in (long, long[:16000], long[:9600])]
        fixed = [bool(np.array_equal(values[0], values[1])), bool(np.array_equal(values[0], values[2]))]
    print(json.dumps({{"fixed": fixed, "labels": [classify(clip, top_k=1)[0]["label"] for clip in clips],
                       "dict_8k": classify({{"array": long[::2], "sampling_rate": 8000}}, top_k=1)[0]["label"],
                       "scores": [sum(e["score"] for e in classify(clip, top_k=None)) for clip in clips[:2]]}}))
    """
    result = run_clean_process(script, tmp_path)
    if kind == "cnn14":
        assert result["fixed"] == [True, False], "a 1.7 s clip is cut to its first second, not to 0.6 s"
        assert json.loads((tmp_path / "probe" / "preprocessor_config.json").read_text())["fixed_clip_seconds"] == 1.0
    assert result["labels"] == export["test_predictions"]
    assert result["dict_8k"] in export["classes"]  # a dict at another rate is resampled (soxr), no torchaudio
    np.testing.assert_allclose(result["scores"], 1.0, rtol=1e-5)  # single-label: softmax over the task's classes


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask
