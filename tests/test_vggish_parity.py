"""VGGish port vs the reference torchvggish network (PyPI), random weights in the release layout.

A random torchvggish checkpoint (and PCA file) goes through our converter. On the *same* log-mel
examples (the numpy reference front end's), every layer #1-#22 of ours is compared with the
reference's raw module outputs put through the fusion recipe written out independently here, and
the 128-d embedding both without (#21, our plain embedding) and with (#22) the legacy final ReLU.

Tolerance: relative 1e-4 of each tensor's largest value. Both sides are float32; ours computes
conv1 as a 9-tap matrix product and runs the other convolutions channels-last, the reference runs
NCHW convolutions, so summation orders differ (measured on the dev machine: <= 3.4e-6 relative,
worst at conv4). A wrong kernel orientation, flatten order or missing ReLU shows up at >= 1e-1.
"""

import numpy as np
import pytest
import torch
from vggish_reference import (independent_frames, random_torchvggish, reference_examples, reference_layer_outputs,
                              scale_close, torchvggish_checkpoint)

from modeling_fusion.convert.vggish import convert, convert_state_dict, detect_layout, load_pca
from modeling_fusion.modeling_vggish import VGGishFusionModel

@pytest.fixture(scope="module")
def pca_params():
    rng = np.random.default_rng(5)
    rotation, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    return {"pca_eigen_vectors": (rotation * 150.0).astype(np.float32),
            "pca_means": rng.normal(0, 0.01, 128).astype(np.float32)}


@pytest.fixture(scope="module")
def converted(tmp_path_factory, pca_params):
    reference = random_torchvggish(seed=11)
    folder = tmp_path_factory.mktemp("ckpt")
    torch.save(torchvggish_checkpoint(reference), folder / "vggish-10086976.pth")
    torch.save(pca_params, folder / "vggish_pca_params-970ea276.pth")  # numpy arrays, as released
    output = convert(folder / "vggish-10086976.pth", tmp_path_factory.mktemp("out") / "vggish",
                     pca=folder / "vggish_pca_params-970ea276.pth", layers=[10, 15])
    return reference, VGGishFusionModel.from_pretrained(output).eval()


@pytest.fixture(scope="module")
def examples():
    t = np.arange(int(2.9 * 16000)) / 16000
    audio = 0.3 * np.sin(2 * np.pi * (300 + 900 * t) * t) + 0.05 * np.random.default_rng(1).standard_normal(len(t))
    return torch.from_numpy(reference_examples(audio.astype(np.float32))).float()  # [3, 96, 64]


def test_every_layer_matches_the_reference(converted, examples):
    reference, model = converted
    with torch.no_grad():
        expected = reference_layer_outputs(reference, examples)
        out = model(examples[None], output_hidden_states=True, output_plain_embedding=True)
    assert len(out.hidden_states) == 23
    scale_close(out.hidden_states[0], independent_frames(examples[:, None], 0).reshape(1, 18, 64))
    for layer in range(1, 23):
        frames = independent_frames(expected[layer - 1], layer - 1)  # [3, 6, D]: examples in time order
        scale_close(out.hidden_states[layer], frames.reshape(1, 18, -1))
    scale_close(out.last_hidden_state, torch.cat([out.hidden_states[10], out.hidden_states[15]], dim=-1))
    assert out.last_hidden_state.shape == (1, 18, 8192)


def test_embedding_with_and_without_final_relu(converted, examples):
    """#22 is torchvggish's output (with its final ReLU); #21 and the plain embedding's input are fc2 without it."""
    reference, model = converted
    with torch.no_grad():
        with_relu = reference(examples[:, None])
        without_relu = reference.embeddings[:5](reference.features(examples[:, None]).permute(0, 2, 3, 1).flatten(1))
        out = model(examples[None], output_hidden_states=True)
    assert (without_relu < 0).any(), "random weights should give negative pre-activations"
    scale_close(out.hidden_states[22][0, ::6], with_relu)
    scale_close(out.hidden_states[21][0, ::6], without_relu)


def test_pca_postprocessing_matches_tf_recipe(converted, examples, pca_params):
    """TF vggish_postprocess in numpy: E (x - mu), clip to [-2, 2], * 255 / 4 after +2, astype(uint8)."""
    _, model = converted
    assert model.config.postprocess
    with torch.no_grad():
        out = model(examples[None], output_hidden_states=True, output_plain_embedding=True)
    raw = out.hidden_states[21][0, ::6].double().numpy()  # [3, 128] pre-activation embeddings
    matrix, means = (pca_params[key].astype(np.float64) for key in ("pca_eigen_vectors", "pca_means"))
    whitened = np.dot(matrix, raw.T - means.reshape(-1, 1)).T
    quantised = ((np.clip(whitened, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)
    # the test PCA spreads the values over the whole 8-bit range, clipping some at both ends
    assert 0 < (quantised == 0).mean() < 0.5 and (quantised == 255).any() and len(np.unique(quantised)) > 50
    per_example = model.postprocessor(out.hidden_states[21][0, ::6])
    np.testing.assert_array_equal(per_example.numpy(), quantised)
    np.testing.assert_allclose(out.plain_embedding[0].numpy(), quantised.mean(0) + quantised.max(0), rtol=1e-6)


def test_tcvrick_layout_converts_to_the_same_weights():
    reference = random_torchvggish(seed=12)
    release, tcvrick = (torchvggish_checkpoint(reference, layout) for layout in ("torchvggish", "tcvrick"))
    assert detect_layout(release) == "torchvggish" and detect_layout(tcvrick) == "tcvrick"
    assert "fc.0.weight" in tcvrick and "embeddings.0.weight" not in tcvrick
    ours_release, ours_tcvrick = convert_state_dict(release, "torchvggish"), convert_state_dict(tcvrick, "tcvrick")
    assert ours_release.keys() == ours_tcvrick.keys()
    assert all(torch.equal(ours_release[key], ours_tcvrick[key]) for key in ours_release)


def test_pca_file_formats(tmp_path, pca_params):
    np.savez(tmp_path / "vggish_pca_params.npz", **pca_params)
    torch.save(pca_params, tmp_path / "pca.pth")
    from_npz, from_pth = load_pca(tmp_path / "vggish_pca_params.npz"), load_pca(tmp_path / "pca.pth")
    for key, value in from_npz.items():
        assert torch.equal(value, from_pth[key])
    np.testing.assert_array_equal(from_npz["postprocessor.pca_eigen_vectors"].numpy(), pca_params["pca_eigen_vectors"])


def test_converter_rejects_unknown_layouts():
    reference = random_torchvggish(seed=13)
    with pytest.raises(ValueError, match="not a VGGish checkpoint in a known layout.*features_network"):
        detect_layout({key.replace("features.", "features_network."): v for key, v in reference.state_dict().items()})
    state = torchvggish_checkpoint(reference)
    state["pproc.pca_means"] = torch.zeros(128, 1)
    with pytest.raises(ValueError, match="unexpected keys.*pproc.pca_means"):
        convert_state_dict(state, detect_layout(state))
