"""Write a run's outputs: results.json, the paper-style table, the per-layer plot and a model-index block."""

import json
from pathlib import Path


def write_report(results, output_dir):
    """results: the CLI's dict (`tasks` -> per-task dicts of runner.evaluate_task). Returns written paths."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    paths = {"json": output / "results.json", "table": output / "results.md",
             "plot": output / "layers.png", "model_index": output / "model_index.yaml"}
    paths["json"].write_text(json.dumps(results, indent=1))
    paths["table"].write_text(markdown_table(results))
    plot_layers(results, paths["plot"])
    paths["model_index"].write_text(model_index(results))
    return paths


def _rows(results):
    """Representation keys in first-seen order, with their titles."""
    rows = {}
    for task in results["tasks"].values():
        for key, rep in task["representations"].items():
            rows.setdefault(key, rep["title"])
    return rows


def markdown_table(results):
    """Rows = representations, columns = tasks, cells "mean±std" accuracy in %, then the average."""
    tasks = results["tasks"]
    lines = ["| Representation | " + " | ".join(t["title"] for t in tasks.values()) + " | Avg. |",
             "|---|" + "---|" * (len(tasks) + 1)]
    for key, title in _rows(results).items():
        cells, means = [], []
        for task in tasks.values():
            rep = task["representations"].get(key)
            cells.append("" if rep is None else f"{rep['mean'] * 100:.1f}±{rep['std'] * 100:.1f}")
            if rep is not None:
                means.append(rep["mean"])
        average = f"{sum(means) / len(means) * 100:.1f}" if len(means) == len(tasks) else ""
        lines.append(f"| {title} | " + " | ".join(cells) + f" | {average} |")
    seeds = ", ".join(str(s) for s in results["settings"]["seeds"])
    lines += ["", f"Linear-probe accuracy (%), mean±std (population std) over seeds {seeds}; fold tasks "
                  "average their folds within each seed."]
    return "\n".join(lines) + "\n"


def plot_layers(results, path):
    """Accuracy per layer, one line per task; the fusion (star) and plain embedding (square) at the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    positions = []
    for number, task in enumerate(results["tasks"].values()):
        reps = task["representations"].values()
        layers = sorted((r["layers"][0], r["mean"] * 100) for r in reps if r["kind"] == "layer")
        color = f"C{number % 10}"
        if layers:
            axes.plot(*zip(*layers), marker="o", color=color, label=task["title"])
        end = max([l for l, _ in layers], default=0)
        for offset, (kind, marker) in enumerate((("fusion", "*"), ("plain", "s")), start=1):
            for rep in (r for r in reps if r["kind"] == kind):
                axes.plot(end + offset, rep["mean"] * 100, marker=marker, markersize=10 if kind == "fusion" else 7,
                          color=color, linestyle="none", label=None if layers or offset > 1 else task["title"])
        positions.append(end)
    end = max(positions, default=0)
    ticks = list(range(1, end + 1))
    axes.set_xticks(ticks + [end + 1, end + 2], [str(t) for t in ticks] + ["fusion", "plain"])
    axes.set_xlabel("layer")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(f"Linear probe per layer: {results['model']['name']}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def model_index(results):
    """YAML `model-index` block (huggingface_hub ModelCardData) for the model's main representation."""
    from huggingface_hub import EvalResult, ModelCardData

    main_kind = "fusion" if any(r["kind"] == "fusion" for t in results["tasks"].values()
                                for r in t["representations"].values()) else "layer"
    name, evals = None, []
    for task_name, task in results["tasks"].items():
        rep = next((r for r in task["representations"].values() if r["kind"] == main_kind), None)
        if rep is None:
            continue
        name = rep["title"]
        evals.append(EvalResult(
            task_type="audio-classification", task_name="Linear evaluation (EVAR protocol)",
            dataset_type=task["dataset_id"],
            dataset_name=task["title"], dataset_split="test" if task["runs"] == ["split"] else "leave-one-fold-out",
            metric_type="accuracy", metric_value=round(rep["mean"] * 100, 2),
            metric_name=f"Accuracy (%), mean of seeds {', '.join(map(str, task['seeds']))}",
        ))
    return ModelCardData(model_name=name, eval_results=evals).to_yaml() + "\n"
