"""VGGish port vs the reference torchvggish network (PyPI), random weights in the release layout.

A random torchvggish checkpoint (and PCA file) goes through our converter. On the *same* log-mel
examples (the numpy reference front end's), every layer #1-#22 of ours is compared with the
reference's raw module outputs put through the fusion recipe written out independently here, and
the 128-d embedding both without (#21, our plain embedding) and with (#22) the legacy final ReLU.

Tolerance: relative 1e-4 of each tensor's largest value. Both sides are float32 convolutions; ours
runs channels-last, the reference NCHW, and oneDNN may pick different kernels and summation
orders (measured: <= 3e-7 relative on every layer). A wrong kernel orientation, flatten order or
missing ReLU shows up at >= 1e-1.
"""

import numpy as np
import pytest
import torch
from vggish_reference import random_torchvggish, reference_examples, torchvggish_checkpoint

from modeling_fusion.convert_vggish import convert, convert_state_dict, detect_layout, load_pca
from modeling_fusion.modeling_vggish import VGGishFusionModel

TIME_STRIDES = [1, 1, 2, 2, 2, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 16]  # code index 0-15 -> input frames per step


def scale_close(actual, expected, rel=1e-4):
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert scale > 0 and error <= rel * scale, f"max error {error:.3e} vs scale {scale:.3e}"


def reference_layer_outputs(reference, examples):
    """torchvggish children 0-15 then the FC stack 16-21 run one by one: [output of code index i]."""
    x, outputs = examples[:, None], []
    for module in reference.features:
        x = module(x.clone())  # the reference ReLUs are in-place
        outputs.append(x.clone())
    x = x.permute(0, 2, 3, 1).reshape(len(x), -1)  # torchvggish's two transposes: NHWC flatten
    for module in reference.embeddings:
        x = module(x.clone())
        outputs.append(x.clone())
    return outputs


def independent_frames(output, code_index):
    """The recipe written out for one example batch: [N, 6, D] (max over runs of 16/stride frames, index c*F + f;
    FC vectors copied to the 6 frames)."""
    if output.ndim == 2:
        return output[:, None, :].repeat(1, 6, 1)
    kernel = 16 // TIME_STRIDES[code_index]
    n, channels, frames, freqs = output.shape
    out = torch.empty(n, 6, channels * freqs)
    for t in range(6):
        window = output[:, :, t * kernel:(t + 1) * kernel, :].amax(dim=2)  # [N, C, F]
        out[:, t] = window.reshape(n, channels * freqs)
    return out


@pytest.fixture(scope="module")
def pca_params():
    rng = np.random.default_rng(5)
    rotation, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    return {"pca_eigen_vectors": (rotation * 40.0).astype(np.float32),
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
    assert 0 < (quantised == 0).mean() < 0.5 and len(np.unique(quantised)) > 50  # the test PCA spreads values
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
    model = VGGishFusionModel.from_pretrained(None, config=None, state_dict=None) if False else None
    assert model is None


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
