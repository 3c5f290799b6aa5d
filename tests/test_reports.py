"""Every committed report is fusion-eval's own rendering of its committed results.json: re-render and compare."""

import json
from pathlib import Path

import pytest

from fusion_eval.report import model_index, render_markdown, selected_fusion

REPORTS = Path(__file__).resolve().parents[1] / "reports"
RUNS = sorted(path.parent for path in REPORTS.glob("*/results.json"))
README = REPORTS.parent / "README.md"
# the real-model reports whose tables the README shows
HEADLINES = ["efficientat_mn04", "yamnet", "efficientat_mn04_fsdd_mlp", "yamnet_fsdd_mlp"]


def test_reports_are_committed():
    assert {run.name for run in RUNS} >= {*HEADLINES, "random_cnn14"}


@pytest.mark.parametrize("run", RUNS, ids=[run.name for run in RUNS])
def test_report_matches_its_results(run):
    results = json.loads((run / "results.json").read_text())
    assert (run / "results.md").read_text() == render_markdown(results), \
        f"{run}/results.md is not the rendering of its results.json: rerun scripts/reproduce_reports.sh"
    assert (run / "model_index.yaml").read_text() == model_index(results)
    if "selection" in results:
        assert json.loads((run / "selected_fusion.json").read_text()) == selected_fusion(results)


@pytest.mark.parametrize("run", RUNS, ids=[run.name for run in RUNS])
def test_report_names_no_machine_path(run):
    """Paths in a committed results.json are as the reproduce script gives them (../shared/data, models/...,
    ~/.cache), not the absolute paths of the machine that ran it."""
    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    absolute = [s for s in strings(json.loads((run / "results.json").read_text())) if s.startswith("/")]
    assert not absolute, f"{run}/results.json records machine paths {absolute[:3]}"


def test_card_results_are_the_cards_own_fusion():
    """`hub build --results`: a folder fusing layers 12 + 14 shows the #12 + #14 row, not the run's choice."""
    from fusion_eval.report import eval_results

    results = json.loads((REPORTS / "efficientat_mn04" / "results.json").read_text())
    evals = eval_results(results, [12, 14])
    expected = [round(task["representations"]["fusion_12_14"]["mean"] * 100, 2) for task in results["tasks"].values()]
    assert [e.metric_value for e in evals if e.metric_name.startswith("Accuracy (%),")] == expected
    assert eval_results(results, [1, 2]) == [], "no numbers for layers the run did not probe"



@pytest.mark.parametrize("name", HEADLINES)
def test_readme_shows_the_report_table_verbatim(name):
    """The README's result table for a real model is its committed results.md table, line for line."""
    table = [line for line in (REPORTS / name / "results.md").read_text().split("\n\n")[0].splitlines()]
    lines = README.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line == table[0]]
    assert any(lines[i:i + len(table)] == table for i in starts), \
        f"README.md does not show reports/{name}/results.md's table as it is now: copy it from there"
    assert f"reports/{name}/selection.png" in README.read_text(), f"README.md links no heat map of {name}"


def test_card_summaries_quote_their_reports():
    """A model card summary that cites reports/<run>/ quotes accuracies ("81.4%") that are cells of that results.md."""
    import re

    from modeling_fusion.hub.publish import load_variant, variants

    cited = 0
    for name in variants():
        summary = load_variant(name)["variant"]["card"]["summary"]
        for run in re.findall(r"reports/(\w+)/", summary):
            table = (REPORTS / run / "results.md").read_text()
            for value in re.findall(r"(\d+\.\d)%", summary):
                assert f"| {value}±" in table, f"{name}'s card quotes {value}%, which reports/{run}/results.md does not show"
                cited += 1
    assert cited >= 6
