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


def render_card(variant, folder, repo_id, results=None):
    """ModelCard for a built folder. `variant` is modeling_fusion/hub/configs/<name>/variant.json as a dict; `results`
    a fusion-eval results.json dict whose main representation goes into the model-index."""
    card = variant["card"]
    config = AutoConfig.from_pretrained(folder)
    preprocessor = json.loads((Path(folder) / "preprocessor_config.json").read_text())
    plain_size = type(config)(**{**config.to_dict(), "embedding_type": "plain"}).hidden_size
    eval_results, measured = [], None
    if card.get("paper_row"):
        eval_results += paper_results(card["paper_row"])
    if results is not None:
        from fusion_eval.report import eval_results as measured_results, markdown_table

        eval_results += measured_results(results, list(config.fusion_layers))
        measured = markdown_table(results)
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
