"""Model cards for the Hub folders, rendered from `modeling_fusion/hub/cards/template.md` with huggingface_hub."""

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import AutoConfig

CARDS = Path(__file__).resolve().parent / "cards"


def paper_results(row):
    """Table III of the paper for one representation -> (markdown, EvalResults sourced to the paper)."""
    table = json.loads((CARDS / "paper_table3.json").read_text())
    results = []
    for name, key, value in zip(table["tasks"], table["task_keys"], table["rows"][row]):
        results.append(EvalResult(
            task_type="audio-classification", task_name="Linear evaluation (EVAR protocol)", dataset_type=key,
            dataset_name=name, dataset_split="test", metric_type="accuracy", metric_value=value,
            metric_name="Accuracy (%)", source_name=table["source"], source_url=table["source_url"]))
    return results


def paper_markdown(rows):
    table = json.loads((CARDS / "paper_table3.json").read_text())
    lines = ["| Representation | " + " | ".join(table["tasks"]) + " | Avg. |", "|---|" + "---|" * (len(table["tasks"]) + 1)]
    for row in rows:
        values = table["rows"][row]
        lines.append(f"| {row} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {sum(values) / len(values):.1f} |")
    return "\n".join(lines)


def load_results(results):
    """A fusion-eval run's results.json as a dict; `results` is that file or its folder (fusion-eval's --output).
    Raises ValueError naming the path when it is missing or not a results.json."""
    path = Path(results)
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"--results {results}: no such file; give the results.json of a fusion-eval run "
                         "(or its --output folder)")
    try:
        run = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"--results {path}: not JSON ({error}); give the results.json fusion-eval wrote") from None
    if not isinstance(run, dict) or "tasks" not in run:
        raise ValueError(f"--results {path}: not a fusion-eval results.json (no 'tasks')")
    return run


def render_card(variant, folder, repo_id, results=None):
    """ModelCard for a built folder. `variant` is modeling_fusion/hub/configs/<name>/variant.json as a dict;
    `results` a fusion-eval results.json (or its folder) whose model-index and table go into the card
    (`measured_results`)."""
    card = variant["card"]
    config = AutoConfig.from_pretrained(folder)
    preprocessor = json.loads((Path(folder) / "preprocessor_config.json").read_text())
    plain_size = type(config)(**{**config.to_dict(), "embedding_type": "plain"}).hidden_size
    eval_results, measured = [], None
    if card.get("paper_row"):
        eval_results += paper_results(card["paper_row"])
    if results is not None:
        # the app's report module renders a run (fusion_eval ships in the same wheel as this tooling; the shipped
        # model code never imports either)
        from fusion_eval.report import eval_results as measured_results, markdown_table

        run = load_results(results)
        eval_results += measured_results(run, list(config.fusion_layers))  # the card's own fusion only
        measured = markdown_table(run)
    citations = json.loads((CARDS / "citations.json").read_text())
    data = ModelCardData(
        model_name=card["model_name"], library_name="transformers", pipeline_tag=card["pipeline_tag"],
        license=variant["source"]["license"], tags=card["tags"], datasets=card["datasets"],
        base_model=card.get("base_model"), eval_results=eval_results or None)
    rows = [r for r in (card.get("baseline_row"), card.get("paper_row")) if r]
    return ModelCard.from_template(
        data, template_path=str(CARDS / "template.md"), model_name=card["model_name"], summary=card["summary"],
        backbone=variant["backbone"], fusion_layers=", ".join(map(str, config.fusion_layers)),
        hidden_size=config.hidden_size, plain_size=plain_size, pooling=config.pooling,
        sampling_rate=preprocessor["sampling_rate"], source=variant["source"], repo_id=repo_id,
        has_head=card["pipeline_tag"] == "audio-classification", paper_rows=paper_markdown(rows) if rows else None,
        measured=measured, citations="\n\n".join(citations[key] for key in card["citations"]))
