"""What a new user hits: each message names the input and what to do; no warning or bar noise (issue 24)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from eval_testing import tiny_cnn14_folder

from conftest import REPO
from modeling_fusion.cli import embed
from transformers import pipeline


@pytest.fixture(scope="module")
def cnn14_folder(tmp_path_factory):
    return tiny_cnn14_folder(tmp_path_factory.mktemp("cnn14") / "model")


def test_a_folder_given_to_the_pipeline_points_to_fusion_embed(cnn14_folder, tmp_path):
    embedder = pipeline("audio-embedding", model=str(cnn14_folder), trust_remote_code=True)
    with pytest.raises(ValueError, match=f"{tmp_path} is a folder.*fusion-embed MODEL {tmp_path}"):
        embedder(str(tmp_path))


def test_too_short_counts_the_files_own_samples_and_rate(cnn14_folder, tmp_path):
    """80 samples at 8 kHz are 160 at the model's 16 kHz; CNN14 needs 4960 (31 hops of 160)."""
    sf.write(tmp_path / "short.flac", np.full(80, 0.1, np.float32), 8000)
    expected = (r"short.flac has 80 samples at 8000 Hz \(0.010 s, 160 samples at the model's 16000 Hz\); this model "
                r"needs at least 4960 samples \(0.310 s\) at 16000 Hz. Zero-pad it at the end, e.g. "
                r"np.pad\(x, \(0, 2480 - len\(x\)\)\) at 8000 Hz.")
    with pytest.raises(SystemExit, match=expected):
        embed.main([str(cnn14_folder), str(tmp_path), "--output", str(tmp_path / "out.npz")])
    embedder = pipeline("audio-embedding", model=str(cnn14_folder), trust_remote_code=True)
    with pytest.raises(ValueError, match=expected):
        embedder(str(tmp_path / "short.flac"))


@pytest.mark.parametrize("extractor", ["YAMNetFeatureExtractor", "VGGishFeatureExtractor"])
def test_read_only_clips_raise_no_torch_warning(extractor):
    """transformers' audio-classification pipeline decodes files with np.frombuffer (read-only); torch warns
    once per process, so this runs in a fresh one."""
    script = f"""
import warnings, numpy as np
from modeling_fusion import {extractor}
clip = np.frombuffer(np.full(20000, 0.1, np.float32).tobytes(), np.float32)
assert not clip.flags.writeable
with warnings.catch_warnings():
    warnings.simplefilter("error")
    {extractor}()(clip, sampling_rate=16000)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr


def test_cli_output_has_no_progress_bars_off_a_terminal(cnn14_folder, tmp_path):
    """fusion-embed to a log file: no "Loading weights" / "embedding" bars, the result line only."""
    folder = tmp_path / "audio"
    folder.mkdir()
    for index in range(3):
        sf.write(folder / f"{index}.wav", np.full(16000, 0.1, np.float32), 16000)
    result = subprocess.run(
        [sys.executable, "-m", "modeling_fusion.cli.embed", str(cnn14_folder), str(folder), "--output",
         str(tmp_path / "out.npz"), "--batch-size", "1"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "wrote" in output and "it/s" not in output and "Loading weights" not in output and "%|" not in output


def test_fusion_eval_help_loads_no_model_code():
    """`fusion-eval --help` took 4.2 s importing torch, transformers and every model; it needs only the task
    registry now (the run imports the rest)."""
    script = ("import sys, contextlib, io\nfrom fusion_eval.cli import main\n"
              "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
              "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
              "assert '--export-classifier' in out.getvalue()\n"
              "print(sorted(m for m in ('torch', 'transformers', 'modeling_fusion', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
