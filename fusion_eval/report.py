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
    paths["table"].write_text(markdown_table(results) + data_sources(results))
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


def data_sources(results):
    """Markdown lines naming where each task's data came from: folder, or Hub id @ the commit loaded
    (config), and the split file with the rows its join dropped."""
    lines = ["", "Data:"]
    for task in results["tasks"].values():
        data = task.get("data") or {}
        if data.get("route") == "Hub":
            config = f" [{data['config']}]" if data.get("config") else ""
            where = f"Hub `{data['dataset']}`{config} @ `{data.get('revision') or 'unknown revision'}`"
        else:
            where = f"{data.get('route', 'local folder')} `{task['source']}`"
        if data.get("split_file"):
            where += (f" + split file `{Path(data['split_file']).name}` (sha256 {data['split_file_sha256'][:12]}) "
                      f"joined on `{data['join_column']}`: {data['rows_dropped']} of {data['rows_before_join']} rows "
                      "not in it, dropped")
        lines.append(f"- {task['title']}: {where}; {task['clips']} clips")
    return "\n".join(lines) + "\n"


def plot_layers(results, path):
    """The accuracy plot: per layer (a line per task) when the run probed single layers (`--sweep`),
    with each fusion and the plain embedding in their own labelled columns at the right; without
    single layers, grouped bars (task x representation) with their values. Std over seeds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["tasks"].values())
    has_layers = any(r["kind"] == "layer" for t in tasks for r in t["representations"].values())
    figure = _plot_sweep(plt, tasks, results) if has_layers else _plot_bars(plt, tasks, results)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def _summary_columns(tasks):
    """(key, tick label) of every fusion and plain representation, fusions first, in first-seen order."""
    columns = {}
    for kind in ("fusion", "plain"):
        for task in tasks:
            for key, rep in task["representations"].items():
                if rep["kind"] == kind and key not in columns:
                    layers = "+".join(f"#{layer}" for layer in rep["layers"])
                    remark = rep["title"].partition(" (")[2].rstrip(")")  # e.g. "chosen on validation"
                    label = f"fusion\n{layers}" if kind == "fusion" else f"plain\n{rep['title'].partition(' (')[0]}"
                    columns[key] = label + (f"\n({remark})" if remark else "")
    return columns


def _plot_sweep(plt, tasks, results):
    columns = _summary_columns(tasks)
    last = max(r["layers"][0] for t in tasks for r in t["representations"].values() if r["kind"] == "layer")
    first = min(r["layers"][0] for t in tasks for r in t["representations"].values() if r["kind"] == "layer")
    slots = {key: last + 2 + 2 * i for i, key in enumerate(columns)}  # 2 layer widths per column: room for labels
    figure, axes = plt.subplots(figsize=(max(8.0, 0.42 * (last - first + 2 * len(columns)) + 4), 5))
    markers = {"fusion": ("*", 14), "plain": ("s", 8)}
    for number, task in enumerate(tasks):
        color = f"C{number % 10}"
        reps = task["representations"]
        layers = sorted((r["layers"][0], r["mean"] * 100, r["std"] * 100) for r in reps.values() if r["kind"] == "layer")
        if layers:
            x, y, err = zip(*layers)
            axes.errorbar(x, y, yerr=err, marker="o", markersize=4, color=color, capsize=2, label=task["title"])
        jitter = (number - (len(tasks) - 1) / 2) * min(0.2, 1.0 / len(tasks))  # tasks side by side in a column
        for key, rep in reps.items():
            if key in slots:
                marker, size = markers[rep["kind"]]
                axes.errorbar(slots[key] + jitter, rep["mean"] * 100, yerr=rep["std"] * 100, marker=marker, markersize=size,
                              color=color, linestyle="none", capsize=2,
                              label=None if layers else task["title"])
    axes.axvline(last + 0.9, color="0.6", linestyle="--", linewidth=1)
    layer_ticks = list(range(first, last + 1))
    axes.set_xticks(layer_ticks + list(slots.values()),
                    [str(t) for t in layer_ticks] + list(columns.values()), fontsize=8)
    axes.set_xlim(first - 0.7, last + 2 * len(columns) + 0.9)
    axes.set_xlabel("single layer (hidden_states index)  |  fusion (star) and plain embedding (square)")
    axes.set_ylabel("linear-probe test accuracy (%)")
    axes.set_title(f"Linear probe per layer: {results['model']['name']}")
    axes.grid(alpha=0.3)
    axes.legend(title="task", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return figure


def _plot_bars(plt, tasks, results):
    columns = _summary_columns(tasks)
    titles = {}
    for key in columns:
        rep = next(t["representations"][key] for t in tasks if key in t["representations"])
        titles[key] = rep["title"] + (" (plain embedding)" if rep["kind"] == "plain" else "")
    width = 0.8 / max(len(columns), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(tasks) * max(len(columns), 1) + 2), 4.5))
    for number, key in enumerate(columns):
        x, y, err = zip(*[(i + (number - (len(columns) - 1) / 2) * width, t["representations"][key]["mean"] * 100,
                           t["representations"][key]["std"] * 100)
                          for i, t in enumerate(tasks) if key in t["representations"]])
        bars = axes.bar(x, y, width * 0.95, yerr=err, capsize=2, color=f"C{number % 10}", label=titles[key])
        axes.bar_label(bars, labels=[f"{v:.1f}" for v in y], fontsize=8, padding=2)
    axes.set_xticks(range(len(tasks)), [t["title"] for t in tasks])
    axes.set_ylabel("linear-probe test accuracy (%)")
    axes.set_ylim(0, 105)
    axes.set_title(f"Linear probe: {results['model']['name']}")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return figure


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
            dataset_type=task["dataset_id"], dataset_revision=(task.get("data") or {}).get("revision"),
            dataset_config=(task.get("data") or {}).get("config"),
            dataset_name=task["title"], dataset_split="test" if task["runs"] == ["split"] else "leave-one-fold-out",
            metric_type="accuracy", metric_value=round(rep["mean"] * 100, 2),
            metric_name=f"Accuracy (%), mean of seeds {', '.join(map(str, task['seeds']))}",
        ))
    return ModelCardData(model_name=name, eval_results=evals).to_yaml() + "\n"
