"""Shared test fixtures: paths to ../shared, and running code in a clean process."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Prepended to every clean-process script: the project's packages cannot be imported, and the Hub is off.
_BLOCK_PACKAGE = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("modeling_fusion", "fusion_eval"):
            raise ImportError(f"{name} must not be importable in this process")
sys.meta_path.insert(0, _Block())
sys.path = [p for p in sys.path if p not in ("", ".")]
"""


def shared_path(*parts):
    """A path under ../shared, or skip the test with the reason when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the project's shared data beside the repo")
    return path


def run_clean_process(script, tmp_path, timeout=600):
    """Run `script` in a fresh interpreter where this package is not importable, offline, from an
    unrelated cwd; the script prints one JSON object as its last line, which is returned."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"),
               TRANSFORMERS_VERBOSITY="error", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"))
    workdir = tmp_path / "clean_cwd"
    workdir.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", _BLOCK_PACKAGE + textwrap.dedent(script)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise AssertionError(f"clean process failed:\n{result.stdout}\n{result.stderr}")
    last_line = result.stdout.strip().splitlines()[-1]
    return json.loads(last_line[last_line.index("{"):])  # a prompt may precede it on the same line
