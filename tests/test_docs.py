"""The documentation runs: every option a README shows for our commands exists, and the usage example runs
where this package is not installed (from a model folder's remote code alone)."""

import contextlib
import io
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
from eval_testing import tiny_cnn14_folder

from conftest import REPO, run_clean_process

DOCS = [REPO / "README.md", REPO / "fusion_eval" / "README.md"]
FENCE = re.compile(r"```bash\n(.*?)```", re.S)
SPAN = re.compile(r"`((?:fusion-eval|fusion-embed|python -m modeling_fusion\.(?:hub|convert))\b[^`]*)`")


def documented_commands(text):
    """(command, [--options]) for every fusion-eval / fusion-embed / hub / convert call in `text`: fenced bash
    lines (continuations joined, comments dropped) and inline code spans. command: ("fusion-eval",),
    ("fusion-embed",), ("hub", "build"), ("convert", "cnn14"), ..."""
    lines = []
    for block in FENCE.findall(text):
        lines += [line.split(" #")[0] for line in block.replace("\\\n", " ").splitlines()]
    lines += [span.replace("\n", " ") for span in SPAN.findall(text)]
    found = []
    for line in lines:
        tokens = line.split()
        for start, token in enumerate(tokens):
            if token in ("fusion-eval", "fusion_eval.cli"):
                command, rest = ("fusion-eval",), tokens[start + 1:]
            elif token == "fusion-embed":
                command, rest = ("fusion-embed",), tokens[start + 1:]
            elif token in ("modeling_fusion.hub", "modeling_fusion.convert") and start + 1 < len(tokens):
                command, rest = (token.split(".")[1], tokens[start + 1]), tokens[start + 2:]
            else:
                continue
            options = [re.sub(r"[\[\]'\"]|=.*", "", word) for word in rest]
            found.append((command, [option for option in options if option.startswith("--")]))
            break
    return found


def help_text(command):
    """What `COMMAND --help` prints."""
    if command[0] == "fusion-eval":
        from fusion_eval.cli import main
    elif command[0] == "fusion-embed":
        from modeling_fusion.cli.embed import main
    elif command[0] == "hub":
        from modeling_fusion.hub.publish import main
    else:
        from modeling_fusion.convert import main
    output = io.StringIO()
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit):
        main([*command[1:], "--help"])
    return output.getvalue()


def undocumented_options(text):
    """["COMMAND: --option", ...] documented in `text` but absent from the command's --help."""
    missing, helps = [], {}
    for command, options in documented_commands(text):
        helps.setdefault(command, help_text(command))
        missing += [f"{' '.join(command)}: {option}" for option in options
                    if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helps[command])]
    return missing


def test_every_documented_option_exists():
    commands = [command for doc in DOCS for command, _ in documented_commands(doc.read_text())]
    assert {("fusion-eval",), ("hub", "build"), ("hub", "list"), ("convert", "yamnet")} <= set(commands)
    for doc in DOCS:
        assert undocumented_options(doc.read_text()) == [], doc


def test_an_undocumented_option_is_caught():
    text = "```bash\nfusion-eval --model m --task fsdd \\\n    --no-such-option 3\n```\nand `fusion-embed M D --per-lair`"
    assert undocumented_options(text) == ["fusion-eval: --no-such-option", "fusion-embed: --per-lair"]


def test_usage_example_runs_without_the_package(tmp_path):
    """examples/usage.py (the README's usage block) beside a model folder and a 44.1 kHz stereo clip, in a process
    where modeling_fusion cannot be imported."""
    work = tmp_path / "clean_cwd"
    tiny_cnn14_folder(work / "models" / "efficientat-mn04")
    stereo = np.random.default_rng(0).standard_normal((int(1.3 * 44100), 2)).astype(np.float32) * 0.1
    sf.write(work / "clip.wav", stereo, 44100)
    shutil.copy(REPO / "examples" / "usage.py", work / "usage.py")
    script = """
    import json, runpy
    names = runpy.run_path("usage.py")
    print(json.dumps({"pooled": names["out"].pooler_output[0].tolist(), "rate": names["extractor"].sampling_rate,
                      "samples": len(names["audio"]), "pipeline": names["embed"]("clip.wav")["embedding"].tolist(),
                      "top": names["classify"](names["audio"], top_k=5)}))
    """
    result = run_clean_process(script, tmp_path)
    assert result["rate"] == 16000 and result["samples"] == round(1.3 * 16000)  # resampled from 44.1 kHz
    np.testing.assert_allclose(result["pipeline"], result["pooled"], rtol=1e-5, atol=1e-6)
    assert len(result["top"]) == 2 and result["top"][0]["score"] >= result["top"][1]["score"]  # the tiny head's 2 labels
