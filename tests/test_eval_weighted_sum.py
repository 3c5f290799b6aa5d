"""`--representation weighted-sum`: SUPERB's softmax weight per layer, learned with the linear or MLP probe
from the cached layers; the weights reach results.json and results.md; CNN layers and a k-NN-only run are
refused, as is `--export-classifier` without a linear-probed fusion (before any probe trains)."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig
from encoder_testing import save_tiny_encoder
from eval_testing import synthetic_folder, tiny_cnn14_folder

from fusion_eval.cli import main
from fusion_eval.probes import mlp
from fusion_eval.probes.layer_weights import LayerWeights
from fusion_eval.probes.linear import ProbeRandomness, linear_probe
from fusion_eval.report import render_markdown


def informative_middle_layer(n=600, width=6, seed=0):
    """x [n, 3 * width]: layer 2 of 3 carries the class (3 classes), layers 1 and 3 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    noise = lambda: rng.normal(0, 1, (n, width))  # noqa: E731
    middle = noise() + 2.0 * np.eye(3)[y] @ rng.normal(0, 1, (3, width))
    return np.concatenate([noise(), middle, noise()], axis=1).astype(np.float32), y


def test_layer_weights_module_is_a_softmax_weighted_sum():
    module = LayerWeights(3)
    module.logits.data = torch.tensor([0.0, 1.0, -1.0])
    x = torch.randn(4, 3 * 5)
    w = torch.softmax(torch.tensor([0.0, 1.0, -1.0]), 0)
    expected = w[0] * x[:, :5] + w[1] * x[:, 5:10] + w[2] * x[:, 10:]
    torch.testing.assert_close(module(x), expected)
    assert torch.allclose(LayerWeights(4)(x[:, :12]), x[:, :12].reshape(4, 4, 3).mean(1)), "zero logits: the mean"


def test_linear_weighted_sum_learns_the_informative_layer_and_folds_into_one_linear_map():
    x, y = informative_middle_layer()
    result = linear_probe(x[:500], y[:500], x[500:], y[500:], 3, ProbeRandomness(42), lr=1e-2, layers=3)
    weights = np.array(result.layer_weights)
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)
    assert weights[1] > 0.5 and weights[1] > 2 * max(weights[0], weights[2]), weights
    assert result.accuracy > 0.9
    # weight [C, 3 * width] and bias on unscaled x give the probe's own test predictions (EVAR's sigmoid argmax)
    assert result.weight.shape == (3, x.shape[1])
    logits = x[500:].astype(np.float64) @ result.weight.T + result.bias
    np.testing.assert_array_equal(logits.argmax(1), result.predictions)
    plain = linear_probe(x[:500], y[:500], x[500:], y[500:], 3, ProbeRandomness(42), lr=1e-2)
    assert plain.layer_weights is None


def test_mlp_weighted_sum_learns_the_informative_layer():
    x, y = informative_middle_layer(seed=1)
    result = mlp.mlp_probe(x[:500], y[:500], x[500:], y[500:], 3, ProbeRandomness(42), layers=3)
    weights = np.array(result.layer_weights)
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)
    assert weights[1] > 0.4 and weights[1] > max(weights[0], weights[2]) + 0.1, weights  # equal would be 1/3


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    root = tmp_path_factory.mktemp("weighted")
    synthetic_folder(root / "tones", clips_per_fold=36, folds=(1, 2, 3))
    save_tiny_encoder("wav2vec2", root / "wav2vec2")
    tiny_cnn14_folder(root / "cnn14")
    return root


def run(root, model, out, extra):
    main(["--model", str(root / model), "--task", str(root / "tones"), "--unit-sec", "1.0", "--split-column", "split",
          "--seeds", "42", "43", "--cache-dir", str(root / "cache"), "--output", str(out), "--batch-size", "8", *extra])


def test_fusion_eval_weighted_sum_on_an_encoder(tones, tmp_path):
    run(tones, "wav2vec2", tmp_path / "out", ["--representation", "weighted-sum", "all-layers", "--probe", "linear",
                                               "mlp", "knn"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    (task,) = results["tasks"].values()
    rep = task["representations"]["weighted_sum"]
    layers = rep["layers"]
    assert layers == task["representations"]["all_layers"]["layers"] and layers[0] == 0, "every hidden state"
    assert rep["dim"] * len(layers) == task["representations"]["all_layers"]["dim"], "dim: the width the probe reads"
    assert set(rep["probes"]) == {"mlp"}, "k-NN trains no weighted sum"
    blocks = AutoConfig.from_pretrained(tones / "wav2vec2").num_hidden_layers
    assert f"layer_{blocks}" in task["representations"], "the plain encoder's baseline (its last layer) stays"
    assert set(task["representations"]["all_layers"]["probes"]) == {"mlp", "knn"}
    for score in (rep, rep["probes"]["mlp"]):
        for seed in score["seeds"].values():
            (only,) = seed["runs"]
            assert len(only["layer_weights"]) == len(layers) and sum(only["layer_weights"]) == pytest.approx(1, abs=1e-6)
            assert only["layer_weights"] != [1 / len(layers)] * len(layers), "the weights were trained"
    # results.md shows the mean weights per probe, from results.json alone
    table = render_markdown(results)
    assert table == (tmp_path / "out" / "results.md").read_text()
    runs = [seed["runs"][0]["layer_weights"] for seed in rep["seeds"].values()]
    mean = np.mean(runs, axis=0)
    title = task["title"]
    row = next(line for line in table.splitlines() if line.startswith(f"| {title} (linear) |"))
    assert row == f"| {title} (linear) | " + " | ".join(f"{w:.3f}" for w in mean) + " |"
    assert any(line.startswith(f"| {title} (MLP) |") for line in table.splitlines())


def test_weighted_sum_refuses_layers_of_several_widths(tones, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(tones, "cnn14", tmp_path / "out", ["--representation", "weighted-sum"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "--representation weighted-sum needs layers of one width" in message and "all-layers" in message
    assert not (tmp_path / "out").exists()


def test_weighted_sum_needs_a_trained_probe(tones, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(tones, "wav2vec2", tmp_path / "out", ["--representation", "weighted-sum", "--probe", "knn"])
    assert exit_info.value.code == 2
    assert "k-NN trains nothing: add linear and/or mlp to --probe" in capsys.readouterr().err


def test_a_converted_encoder_sums_the_same_layers_as_its_checkpoint(tones, tmp_path):
    from modeling_fusion.convert import main as convert_main

    convert_main(["encoder", "--checkpoint", str(tones / "wav2vec2"), "--output", str(tmp_path / "fusion"),
                  "--layers", "1", "2"])
    main(["--model", str(tmp_path / "fusion"), "--task", str(tones / "tones"), "--unit-sec", "1.0", "--split-column",
          "split", "--seeds", "42", "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out"),
          "--batch-size", "8", "--representation", "weighted-sum"])
    (task,) = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"].values()
    blocks = AutoConfig.from_pretrained(tones / "wav2vec2").num_hidden_layers
    assert task["representations"]["weighted_sum"]["layers"] == list(range(blocks + 1)), "hidden_states[0] included"


@pytest.mark.parametrize("extra", [[], ["--layers", "1", "2", "--probe", "knn"]], ids=["no fusion", "no linear probe"])
def test_export_classifier_without_a_linear_fusion_probe_fails_before_probing(tones, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exit_info:
        run(tones, "wav2vec2", tmp_path / "out", ["--export-classifier", str(tmp_path / "clf"), *extra])
    assert exit_info.value.code == 2
    assert "--export-classifier ships the linear probe of a fusion" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "clf").exists()
