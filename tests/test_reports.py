"""Every committed report is fusion-eval's own rendering of its committed results.json: re-render and compare."""

import json
from pathlib import Path

import pytest

from fusion_eval.report import model_index, render_markdown, selected_fusion

REPORTS = Path(__file__).resolve().parents[1] / "reports"
RUNS = sorted(path.parent for path in REPORTS.glob("*/results.json"))


def test_reports_are_committed():
    assert {run.name for run in RUNS} >= {"efficientat_mn04", "random_cnn14"}


@pytest.mark.parametrize("run", RUNS, ids=[run.name for run in RUNS])
def test_report_matches_its_results(run):
    results = json.loads((run / "results.json").read_text())
    assert (run / "results.md").read_text() == render_markdown(results), \
        f"{run}/results.md is not the rendering of its results.json: rerun scripts/reproduce_reports.sh"
    assert (run / "model_index.yaml").read_text() == model_index(results)
    if "selection" in results:
        assert json.loads((run / "selected_fusion.json").read_text()) == selected_fusion(results)


def test_card_results_are_the_cards_own_fusion():
    """`hub build --results`: a folder fusing layers 12 + 14 shows the #12 + #14 row, not the run's choice."""
    from fusion_eval.report import eval_results

    results = json.loads((REPORTS / "efficientat_mn04" / "results.json").read_text())
    evals = eval_results(results, [12, 14])
    expected = [round(task["representations"]["fusion_12_14"]["mean"] * 100, 2) for task in results["tasks"].values()]
    assert [e.metric_value for e in evals if e.metric_name.startswith("Accuracy (%),")] == expected
    assert eval_results(results, [1, 2]) == [], "no numbers for layers the run did not probe"
