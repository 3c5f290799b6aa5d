"""Write a run's outputs: results.json, the paper-style table, the per-layer plot and a model-index block."""

import json
from pathlib import Path


def write_report(results, output_dir):
    """results: the CLI's dict (`tasks` -> per-task dicts of runner.evaluate_task). Returns written paths."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    paths = {"json": output / "results.json", "table": output / "results.md",
             "plot": output / "layers.png", "model_index": output / "model_index.yaml"}
    if "selection" in results:
        paths.update(selection=output / "selection.png", choice=output / "selected_fusion.json")
    paths["json"].write_text(json.dumps(results, indent=1))
    paths["table"].write_text(render_markdown(results))
    plot_layers(results, paths["plot"])
    paths["model_index"].write_text(model_index(results))
    if "selection" in results:
        plot_selection(results, paths["selection"])
        paths["choice"].write_text(json.dumps(selected_fusion(results), indent=1) + "\n")
    return paths


def render_markdown(results):
    """results.md: the table(s), the selection summary (with `--select-fusion`) and the data sources; a
    function of results.json alone, so a committed report can be checked against its results."""
    return markdown_table(results) + selection_summary(results) + layer_weights_table(results) + data_sources(results)


def _probes(results):
    return list(results["settings"].get("probe") or ["linear"])


def probe_score(rep, probe):
    """The {mean, std, seeds} of one probe of a representation's result (the first probe's are its own)."""
    return rep if rep.get("probe", "linear") == probe else rep.get("probes", {}).get(probe)


def _rows(results):
    """Representation keys in first-seen order, with their titles."""
    rows = {}
    for task in results["tasks"].values():
        for key, rep in task["representations"].items():
            rows.setdefault(key, rep["title"])
    return rows


def markdown_table(results):
    """Rows = representations, columns = tasks (x probes when several), cells "mean±std" accuracy in %,
    then the average over tasks (per probe)."""
    from .probes import TITLES

    tasks, probes = results["tasks"], _probes(results)
    several = len(probes) > 1
    head = [f"{t['title']} ({TITLES[p]})" if several else t["title"] for p in probes for t in tasks.values()]
    head += [f"Avg. ({TITLES[p]})" for p in probes] if several else ["Avg."]
    lines = ["| Representation | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for key, title in _rows(results).items():
        cells, averages = [], []
        for probe in probes:
            means = []
            for task in tasks.values():
                rep = task["representations"].get(key)
                score = None if rep is None else probe_score(rep, probe)
                cells.append("" if score is None else f"{score['mean'] * 100:.1f}±{score['std'] * 100:.1f}")
                if score is not None:
                    means.append(score["mean"])
            averages.append(f"{sum(means) / len(means) * 100:.1f}" if len(means) == len(tasks) else "")
        lines.append(f"| {title} | " + " | ".join(cells + averages) + " |")
    seeds = ", ".join(str(s) for s in results["settings"]["seeds"])
    what = "Linear-probe" if probes == ["linear"] else ", ".join(TITLES[p] for p in probes) + " probe"
    lines += ["", f"{what} accuracy (%), mean±std (population std) over seeds {seeds}; fold tasks "
                  "average their folds within each seed."]
    return "\n".join(lines) + "\n"


def selection_summary(results):
    """Markdown lines of `--select-fusion`'s choice: criterion, the chosen layers and the five best candidates."""
    selection = results.get("selection")
    if not selection:
        return ""
    ranked = sorted(selection["mean"].items(), key=lambda item: -item[1])
    lines = ["", f"Fusion chosen on validation data only: **layers {' + '.join(map(str, selection['chosen']))}** "
                 f"(best single layer: {selection['best_layer']}); criterion: {selection['criterion']}; "
                 f"{len(ranked)} candidates in {selection['seconds']:.0f} s. Best mean validation accuracy (%): "
                 + ", ".join(f"{name} {value * 100:.1f}" for name, value in ranked[:5]) + "."]
    return "\n".join(lines) + "\n"


def learned_layer_weights(results):
    """{(task title, probe): (layers, mean softmax weight per layer over seeds and runs)} of the
    `--representation weighted-sum` probes."""
    from .probes import TITLES

    found = {}
    for task in results["tasks"].values():
        for rep in task["representations"].values():
            if rep["kind"] != "weighted-sum":
                continue
            for probe in _probes(results):
                score = probe_score(rep, probe)
                if score is None:  # k-NN trains no weighted sum
                    continue
                runs = [run["layer_weights"] for seed in score["seeds"].values() for run in seed["runs"]]
                found[(task["title"], TITLES[probe])] = (rep["layers"], [sum(w) / len(runs) for w in zip(*runs)])
    return found


def layer_weights_table(results):
    """Markdown table of the weighted-sum probes' learned layer weights: a row per task and probe, a column per layer."""
    found = learned_layer_weights(results)
    if not found:
        return ""
    layers = next(iter(found.values()))[0]
    untrained = "; k-NN trains none, so its columns have no weighted-sum score" if "knn" in _probes(results) else ""
    lines = ["", "Learned layer weights of the weighted sum (softmax, mean over seeds and runs). They start equal "
                 f"({1 / len(layers):.3f}, SUPERB's zero logits) and train at the probe's learning rate for as long as "
                 f"its early stopping lets them (SUPERB trains for far more steps){untrained}:", "", "| Task (probe) | " + " | ".join(f"#{l}" for l in layers) + " |",
             "|---|" + "---|" * len(layers)]
    for (task, probe), (_, weights) in found.items():
        lines.append(f"| {task} ({probe}) | " + " | ".join(f"{w:.3f}" for w in weights) + " |")
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


SUMMARY_MARKERS = {"fusion": ("*", 14), "all-layers": ("D", 8), "weighted-sum": ("P", 10), "plain": ("s", 8)}
SUMMARY_NAMES = {"fusion": "fusion (star)", "all-layers": "all layers (diamond)", "weighted-sum": "weighted sum (plus)",
                 "plain": "plain embedding (square)"}


def _summary_columns(tasks):
    """(key, tick label) of every representation that is not a single layer, in SUMMARY_MARKERS' order
    of kinds (fusions first), then first-seen order."""
    columns = {}
    for kind in SUMMARY_MARKERS:
        for task in tasks:
            for key, rep in task["representations"].items():
                if rep["kind"] == kind and key not in columns:
                    layers = "+".join(f"#{layer}" for layer in rep["layers"])
                    remark = rep["title"].partition(" (")[2].rstrip(")")  # e.g. "chosen on validation"
                    label = {"fusion": f"fusion\n{layers}", "all-layers": "all layers\nconcatenated",
                             "weighted-sum": "weighted sum\nof layers",
                             "plain": f"plain\n{rep['title'].partition(' (')[0]}"}[kind]
                    columns[key] = label + (f"\n({remark})" if remark else "")
    return columns


def _plot_sweep(plt, tasks, results):
    columns = _summary_columns(tasks)
    last = max(r["layers"][0] for t in tasks for r in t["representations"].values() if r["kind"] == "layer")
    first = min(r["layers"][0] for t in tasks for r in t["representations"].values() if r["kind"] == "layer")
    slots = {key: last + 2 + 2 * i for i, key in enumerate(columns)}  # 2 layer widths per column: room for labels
    figure, axes = plt.subplots(figsize=(max(8.0, 0.42 * (last - first + 2 * len(columns)) + 4), 5))
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
                marker, size = SUMMARY_MARKERS[rep["kind"]]
                axes.errorbar(slots[key] + jitter, rep["mean"] * 100, yerr=rep["std"] * 100, marker=marker, markersize=size,
                              color=color, linestyle="none", capsize=2,
                              label=None if layers else task["title"])
    axes.axvline(last + 0.9, color="0.6", linestyle="--", linewidth=1)
    layer_ticks = list(range(first, last + 1))
    axes.set_xticks(layer_ticks + list(slots.values()),
                    [str(t) for t in layer_ticks] + list(columns.values()), fontsize=8)
    axes.set_xlim(first - 0.7, last + 2 * len(columns) + 0.9)
    kinds = {rep["kind"] for t in tasks for key, rep in t["representations"].items() if key in slots}
    axes.set_xlabel("single layer (hidden_states index)  |  " + ", ".join(
        name for kind, name in SUMMARY_NAMES.items() if kind in kinds))
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


def selected_fusion(results):
    """selected_fusion.json: the chosen layers and the command that builds a model folder fusing them."""
    from .probes import TITLES

    selection, model = results["selection"], results["model"]
    layers = " ".join(map(str, selection["chosen"]))
    family = model["family"]
    converter = family if family in ("cnn14", "vggish", "ast", "efficientat", "yamnet") else "encoder"
    checkpoint = model["id"] if converter == "encoder" else "ORIGINAL_CHECKPOINT"
    key = "layers_" + "_".join(map(str, selection["chosen"]))
    return {
        "layers": selection["chosen"], "best_single_layer": selection["best_layer"],
        "mean_valid_accuracy": selection["mean"]["+".join(map(str, selection["chosen"]))],
        "criterion": selection["criterion"], "tasks": list(results["tasks"]),
        "test_accuracy": {TITLES[p]: {name: probe_score(task["representations"][key], p)["mean"]
                                      for name, task in results["tasks"].items()} for p in _probes(results)},
        "command": f"python -m modeling_fusion.convert {converter} --checkpoint {checkpoint} --output OUTPUT_FOLDER "
                   f"--layers {layers}",
        "config": {"fusion_layers": selection["chosen"]},
    }


def plot_selection(results, path):
    """Heat map of `--select-fusion`'s validation accuracy, layer x layer (diagonal: the single layer),
    one panel per task and one for the mean over tasks, the best pair framed and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    selection = results["selection"]
    layers = selection["layers"]
    panels = [(results["tasks"][name]["title"], scores) for name, scores in selection["tasks"].items()]
    panels.append(("mean over tasks", selection["mean"]))
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    size = max(4.0, 0.32 * len(layers) + 1.5)
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for axis in axes.flat[len(panels):]:
        axis.axis("off")
    for axis, (title, scores) in zip(axes.flat, panels):
        grid = np.full((len(layers), len(layers)), np.nan)
        for i, a in enumerate(layers):
            for j, b in enumerate(layers):
                key = f"{a}" if a == b else "+".join(map(str, sorted((a, b))))
                grid[i, j] = scores.get(key, np.nan) * 100
        pairs = {k: v for k, v in scores.items() if k.count("+") == 1}
        best = max(pairs, key=pairs.get)
        a, b = (layers.index(int(x)) for x in best.split("+"))
        image = axis.imshow(grid, cmap="viridis", origin="lower")
        for i, j in ((a, b), (b, a)):
            axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        axis.annotate(f"best {best}: {pairs[best] * 100:.1f}", (b, a), xytext=(0.02, 1.02), textcoords="axes fraction",
                      fontsize=9, color="red")
        axis.set_xticks(range(len(layers)), layers, fontsize=7)
        axis.set_yticks(range(len(layers)), layers, fontsize=7)
        axis.set_xlabel("layer")
        axis.set_ylabel("layer")
        axis.set_title(title, pad=16)
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="validation accuracy (%)")
    figure.suptitle(f"{results['model']['name']}: validation accuracy of every layer pair "
                    f"(diagonal: single layer); {selection['criterion']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def eval_results(results, fusion_layers=None):
    """huggingface_hub EvalResults of one representation, one per task and probe: the fusion of
    `fusion_layers` (a model card's own layers; none when the run did not probe them), else the model's
    main representation (the chosen fusion with `--select-fusion`, else the fusion, else the layer)."""
    from huggingface_hub import EvalResult

    from .probes import TITLES

    names = {"linear": "Linear evaluation (EVAR protocol)", "mlp": "MLP probe (HEAR grid)",
             "knn": "k-NN probe (cosine, k on validation)"}
    chosen = fusion_layers or results.get("selection", {}).get("chosen")
    main_kind = "fusion" if any(r["kind"] == "fusion" for t in results["tasks"].values()
                                for r in t["representations"].values()) else "layer"
    probes = _probes(results)
    # the Hub groups one task's results into one entry (its first task name): each probe is one metric there
    task_name = names[probes[0]] if len(probes) == 1 else " / ".join(names[p] for p in probes)
    evals = []
    for probe in probes:
        for task in results["tasks"].values():
            reps = task["representations"].values()
            rep = next((r for r in reps if chosen and r["kind"] == "fusion" and r["layers"] == list(chosen)), None)
            if rep is None and not fusion_layers:
                rep = next((r for r in reps if r["kind"] == main_kind), None)
            if rep is None:
                continue
            evals.append(EvalResult(
                task_type="audio-classification", task_name=task_name,
                dataset_type=task["dataset_id"], dataset_revision=(task.get("data") or {}).get("revision"),
                dataset_config=(task.get("data") or {}).get("config"),
                dataset_name=task["title"], dataset_split="test" if task["runs"] == ["split"] else "leave-one-fold-out",
                metric_type="accuracy", metric_value=round(probe_score(rep, probe)["mean"] * 100, 2),
                metric_name=f"Accuracy (%{'' if probe == 'linear' else ', ' + TITLES[probe]}), mean of seeds "
                            f"{', '.join(map(str, task['seeds']))}",
            ))
    return evals


def model_index(results):
    """YAML `model-index` block (huggingface_hub ModelCardData) for the model's main representation."""
    from huggingface_hub import ModelCardData

    chosen = results.get("selection", {}).get("chosen")
    titles = [r["title"] for t in results["tasks"].values() for r in t["representations"].values()
              if (chosen and r["layers"] == chosen and r["kind"] == "fusion") or (not chosen and r["kind"] == "fusion")]
    titles = titles or [r["title"] for t in results["tasks"].values() for r in t["representations"].values()
                        if r["kind"] == "layer"]
    return ModelCardData(model_name=titles[0] if titles else None, eval_results=eval_results(results)).to_yaml() + "\n"
