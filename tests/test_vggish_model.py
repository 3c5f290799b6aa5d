"""VGGish-Fusion end to end: waveform -> fused frames and clip embeddings, against an independent
computation (numpy reference front end + torchvggish network + the recipe written out here), for
0.5 s, 1 s, 2.9 s and 10 s clips; mixed-length batches; plain embedding; skipped layers; bad input.

Tolerance: relative 1e-4 of each tensor's largest value (float32 network on both sides, log-mel
inputs equal to float32 rounding; measured on the dev machine: <= 2.4e-6). Batched vs single-clip runs
differ only by batch-size-dependent float32 kernels: rtol 1e-5, atol 1e-6.
"""

import numpy as np
import pytest
import torch
from vggish_reference import (independent_frames, random_torchvggish, reference_examples, reference_layer_outputs,
                              scale_close)

from modeling_fusion import modeling_vggish
from modeling_fusion.configuration_vggish import VGGishFusionConfig
from modeling_fusion.convert.vggish import convert_state_dict
from modeling_fusion.feature_extraction_vggish import VGGishFeatureExtractor
from modeling_fusion.modeling_vggish import VGGishForAudioClassification, VGGishFusionModel

RATE = 16000
DURATIONS = {0.5: 1, 1.0: 1, 2.9: 3, 10.0: 10}  # seconds -> 0.96 s examples


@pytest.fixture(scope="module")
def reference():
    return random_torchvggish(seed=21)


def ported(reference, **config):
    model = VGGishFusionModel(VGGishFusionConfig(**config))
    model.load_state_dict(convert_state_dict(reference.state_dict(), "torchvggish"))
    return model.eval()


@pytest.fixture(scope="module")
def model(reference):
    return ported(reference)


def audio(seconds, seed):
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.2 * np.sin(2 * np.pi * (200 + 300 * seed) * t)
    return (tone + 0.05 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def embed(model, clips, **kwargs):
    features = VGGishFeatureExtractor()(clips, sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        return model(**features, **kwargs)


def independent_fusion(reference, clip, code_indices=(9, 14)):
    """Reference front end -> torchvggish children one by one -> per-example frames of each layer,
    concatenated, examples joined in time order -> ([6 E, D] frames, mean + max embedding)."""
    examples = torch.from_numpy(reference_examples(clip)).float()
    with torch.no_grad():
        outputs = reference_layer_outputs(reference, examples)
    frames = torch.cat([independent_frames(outputs[i], i) for i in code_indices], dim=-1)  # [E, 6, D]
    frames = frames.reshape(-1, frames.shape[-1])
    return frames, frames.mean(dim=0) + frames.amax(dim=0)


@pytest.mark.parametrize("seconds", sorted(DURATIONS))
def test_fusion_values_per_duration(model, reference, seconds):
    clip = audio(seconds, seed=int(seconds * 10))
    out = embed(model, clip)
    frames, embedding = independent_fusion(reference, clip)
    assert out.last_hidden_state.shape == (1, 6 * DURATIONS[seconds], 8192) and out.frame_mask is None
    assert out.pooler_output.shape == (1, 8192) == (1, model.config.hidden_size)
    scale_close(out.last_hidden_state[0], frames)
    scale_close(out.pooler_output[0], embedding)


def test_mixed_length_batch_equals_single_clips(model, monkeypatch):
    """Also with examples run in chunks of 3, so chunk boundaries fall inside clips."""
    monkeypatch.setattr(modeling_vggish, "EXAMPLES_PER_CHUNK", 3)
    clips = [audio(0.5, 1), audio(10.0, 2), audio(2.9, 3), audio(1.0, 4)]
    batch = embed(model, clips, output_hidden_states=True, output_plain_embedding=True)
    assert batch.frame_mask.sum(dim=1).tolist() == [6, 60, 18, 6]
    for row, clip in enumerate(clips):
        single = embed(model, clip, output_hidden_states=True, output_plain_embedding=True)
        frames = single.last_hidden_state.shape[1]
        close = dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(batch.pooler_output[row], single.pooler_output[0], **close)
        torch.testing.assert_close(batch.plain_embedding[row], single.plain_embedding[0], **close)
        torch.testing.assert_close(batch.last_hidden_state[row, :frames], single.last_hidden_state[0], **close)
        assert batch.frame_mask[row, :frames].all() and not batch.frame_mask[row, frames:].any()
        assert batch.last_hidden_state[row, frames:].abs().sum() == 0
        for layer in range(23):
            torch.testing.assert_close(batch.hidden_states[layer][row, :frames], single.hidden_states[layer][0],
                                       **close)
            torch.testing.assert_close(batch.pooled_hidden_states[layer][row], single.pooled_hidden_states[layer][0],
                                       **close)


def test_paper_baseline_and_plain_embedding(model, reference):
    """#22 alone is the paper's "VGGish" row (post-ReLU 128-d, mean+max over examples); the plain
    embedding is the same pooling of fc2 *without* the final ReLU (current TF VGGish)."""
    clip = audio(2.9, 5)
    examples = torch.from_numpy(reference_examples(clip)).float()[:, None]
    with torch.no_grad():
        post_relu = reference(examples)
        pre_relu = reference.embeddings[:5](reference.features(examples).permute(0, 2, 3, 1).flatten(1))
    baseline = embed(ported(reference, fusion_layers=[22]), clip)
    scale_close(baseline.pooler_output[0], post_relu.mean(0) + post_relu.amax(0))
    plain_model = ported(reference, embedding_type="plain")
    plain = embed(plain_model, [clip, audio(10.0, 6)])
    assert plain.last_hidden_state.shape == (2, 10, 128) and plain_model.config.hidden_size == 128
    scale_close(plain.last_hidden_state[0, :3], pre_relu)
    scale_close(plain.pooler_output[0], pre_relu.mean(0) + pre_relu.amax(0))
    assert plain.frame_mask[0].tolist() == [True] * 3 + [False] * 7
    scale_close(embed(model, clip, output_plain_embedding=True).plain_embedding[0], plain.pooler_output[0])


def test_single_layer_fusion_is_its_pooled_hidden_state(model, reference):
    """pooled_hidden_states[n] is the paper's probe of layer #n alone; #10 #15 concatenates two of them."""
    clip = audio(2.9, 10)
    out = embed(model, clip, output_hidden_states=True)
    only9 = embed(ported(reference, fusion_layers=[9]), clip)
    torch.testing.assert_close(only9.pooler_output, out.pooled_hidden_states[9])
    layer15 = out.hidden_states[15]
    torch.testing.assert_close(out.pooled_hidden_states[15], layer15.mean(1) + layer15.amax(1))
    fused = torch.cat([out.hidden_states[10], out.hidden_states[15]], dim=-1)
    torch.testing.assert_close(out.last_hidden_state, fused)


@pytest.mark.parametrize("config,expected", [
    (dict(), list(range(15))),
    (dict(fusion_layers=[2]), [0, 1]),
    (dict(embedding_type="plain"), list(range(21))),
])
def test_layers_after_the_last_needed_are_not_run(reference, config, expected):
    model = ported(reference, **config)
    ran = []
    for index, module in enumerate(list(model.features) + list(model.fc)):
        module.register_forward_hook(lambda m, a, o, index=index: ran.append(index))
    embed(model, audio(1.0, 7))
    assert ran == expected


def test_classifier_probe_and_loss(reference):
    config = VGGishFusionConfig(id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    head = VGGishForAudioClassification(config).eval()
    head.vggish.load_state_dict(convert_state_dict(reference.state_dict(), "torchvggish"))
    clips = [audio(1.0, 8), audio(2.9, 9)]
    out = embed(head, clips, labels=torch.tensor([0, 2]))
    pooled = embed(head.vggish, clips).pooler_output
    torch.testing.assert_close(out.logits, head.classifier(pooled))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])))
    plain_head = VGGishForAudioClassification(VGGishFusionConfig(classifier_input="plain", num_labels=4))
    assert plain_head.classifier.in_features == 128 and head.classifier.in_features == 8192


def test_model_rejects_bad_input(model):
    with pytest.raises(ValueError, match="log-mel examples"):
        model(torch.zeros(3, 96, 64))
    with pytest.raises(ValueError, match="log-mel examples"):
        model(torch.zeros(1, 2, 96, 128))
    with pytest.raises(ValueError, match="attention_mask must be"):
        model(torch.zeros(2, 3, 96, 64), attention_mask=torch.ones(2, 3 * 96))
    with pytest.raises(ValueError, match="no real example"):
        model(torch.zeros(2, 3, 96, 64), attention_mask=torch.tensor([[1, 1, 0], [0, 0, 0]]))


@pytest.mark.parametrize("kwargs,message", [
    (dict(fusion_layers=[0]), "layer numbers 1-22"),
    (dict(fusion_layers=[10, 23]), "layer numbers 1-22"),
    (dict(num_mel_bins=128), "64 mel bins"),
    (dict(pooling="attention"), "pooling must be"),
    (dict(embedding_type="pca"), "embedding_type must be"),
    (dict(fusion_layers=10), "fusion_layers must be a list of"),  # the shared check of every fusion config
    (dict(fusion_layers="1015"), "fusion_layers must be a list of"),
    (dict(fusion_layers=[10.5, 15]), "fusion_layers must be a list of"),
    (dict(classifier_input="cls"), "classifier_input must be one of"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VGGishFusionConfig(**kwargs)
