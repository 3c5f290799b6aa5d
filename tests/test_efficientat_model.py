"""EfficientAT architecture by width, fusion outputs, padding invariance and bad input (random weights)."""

import math

import numpy as np
import pytest
import torch
from efficientat_testing import noise, random_model

from modeling_fusion.configuration_efficientat import NUM_STAGES, EfficientATFusionConfig
from modeling_fusion.convert.efficientat import PUBLISHED_WIDTHS
from modeling_fusion.feature_extraction_efficientat import EfficientATFeatureExtractor
from modeling_fusion.modeling_efficientat import EfficientATForAudioClassification, EfficientATFusionModel

# Stage channels of features.0-16 (efficientat.md §3.3 for mn04; MobileNetV3-Large for mn10).
MN04_CHANNELS = [8, 8, 16, 16, 16, 16, 16, 32, 32, 32, 32, 48, 48, 64, 64, 64, 384]
MN10_CHANNELS = [16, 16, 24, 24, 40, 40, 40, 80, 80, 80, 80, 112, 112, 160, 160, 160, 960]


def test_mn04_architecture():
    config = EfficientATFusionConfig(width_mult=0.4, num_labels=527)
    assert config.stage_channels == MN04_CHANNELS
    assert config.time_strides == [2, 2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32]
    assert config.layer_sizes[1:] == [512, 512, 512, 512, 256, 256, 256, 256, 256, 256, 256, 384, 384,
                                      256, 256, 256, 1536]  # efficientat.md §6, C*F per frame
    assert config.head_hidden_size == 512
    model = EfficientATForAudioClassification(config)
    assert sum(p.numel() for p in model.parameters()) == 983_599  # efficientat.md §1
    se_widths = [stage.se.fc1.out_features for stage in model.efficientat.features[1:16] if stage.se is not None]
    assert se_widths == [8, 16, 16, 48, 72, 72, 96, 96]
    assert model.efficientat.features[1].expand is None and model.efficientat.features[2].expand is not None
    assert model.efficientat.features[5].depthwise.bn.eps == 1e-3


def test_every_published_width_builds():
    for width in PUBLISHED_WIDTHS:
        with torch.device("meta"):
            model = EfficientATForAudioClassification(EfficientATFusionConfig(width_mult=width, num_labels=527))
        channels = [stage.bn.num_features if hasattr(stage, "bn") else stage.project.bn.num_features
                    for stage in model.efficientat.features]
        assert channels == model.config.stage_channels, width
        assert model.classifier.dense.out_features == model.config.head_hidden_size


@torch.no_grad()
def test_mn10_random_weights_run():
    model = random_model(width_mult=1.0, fusion_layers=[12, 17])
    assert model.config.stage_channels == MN10_CHANNELS and model.config.head_hidden_size == 1280
    inputs = EfficientATFeatureExtractor()(noise(32000, 1), sampling_rate=32000, return_tensors="pt")
    logits = model(**inputs).logits
    outputs = model.efficientat(**inputs, output_hidden_states=True, output_plain_embedding=True)
    assert logits.shape == (1, 527) and torch.isfinite(logits).all()
    assert [h.shape[-1] for h in outputs.hidden_states] == model.config.layer_sizes
    assert outputs.pooler_output.shape == (1, model.config.hidden_size) == (1, 112 * 8 + 960 * 4)
    # the MLP head reads the plain embedding, the global average of features.16
    torch.testing.assert_close(logits, model.classifier(outputs.plain_embedding), rtol=0, atol=0)
    maps = model.efficientat.feature_maps(inputs["input_values"])
    torch.testing.assert_close(outputs.plain_embedding, maps[-1].mean(dim=(2, 3)))


@torch.no_grad()
def test_fusion_is_the_hidden_states_of_the_chosen_layers():
    model = random_model(fusion_layers=[6, 13, 17])
    inputs = EfficientATFeatureExtractor()(noise(40000, 2), sampling_rate=32000, return_tensors="pt")
    outputs = model.efficientat(**inputs, output_hidden_states=True)
    frames = math.ceil(inputs["input_values"].shape[1] / 32)  # 125 -> 4
    assert all(h.shape[1] == frames for h in outputs.hidden_states)
    fused = torch.cat([outputs.hidden_states[layer] for layer in (6, 13, 17)], dim=-1)
    torch.testing.assert_close(outputs.last_hidden_state, fused, rtol=0, atol=0)
    torch.testing.assert_close(outputs.pooler_output, fused.mean(dim=1) + fused.amax(dim=1))
    # layer 6 = features.5 (stride 8): 4 frames pooled per fused frame, ceil mode keeps the partial last one
    feature_map = model.efficientat.feature_maps(inputs["input_values"], 6)[-1]  # [1, C, F, 16]
    last = feature_map[..., 12:].amax(dim=-1).reshape(-1)
    torch.testing.assert_close(outputs.hidden_states[6][0, -1], last, rtol=0, atol=0)


@torch.no_grad()
def test_mixed_length_batch_equals_single_clips():
    model = random_model()
    extractor = EfficientATFeatureExtractor()
    clips = [noise(32000, 3), noise(4592, 4), noise(9536, 5)]
    batch = extractor(clips, sampling_rate=32000, return_tensors="pt")
    assert batch["input_values"].shape == (3, 100, 128) and batch["attention_mask"].sum(dim=1).tolist() == [100, 15, 30]
    together = model.efficientat(**batch, output_hidden_states=True, output_plain_embedding=True)
    logits = model(**batch).logits
    assert together.frame_mask.sum(dim=1).tolist() == [4, 1, 1]
    for row, clip in enumerate(clips):
        alone_inputs = extractor(clip, sampling_rate=32000, return_tensors="pt")
        alone = model.efficientat(**alone_inputs, output_hidden_states=True, output_plain_embedding=True)
        frames = alone.last_hidden_state.shape[1]
        torch.testing.assert_close(together.last_hidden_state[row, :frames], alone.last_hidden_state[0],
                                   atol=1e-5, rtol=0)
        assert not together.last_hidden_state[row, frames:].any()
        torch.testing.assert_close(together.pooler_output[row], alone.pooler_output[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(together.plain_embedding[row], alone.plain_embedding[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(logits[row], model(**alone_inputs).logits[0], atol=1e-5, rtol=0)
        for layer in range(NUM_STAGES + 1):
            torch.testing.assert_close(together.hidden_states[layer][row, :frames], alone.hidden_states[layer][0],
                                       atol=1e-5, rtol=0)


@torch.no_grad()
def test_plain_embedding_type_and_loss():
    model = random_model(embedding_type="plain")
    inputs = EfficientATFeatureExtractor()(noise(16000, 6), sampling_rate=32000, return_tensors="pt")
    outputs = model.efficientat(**inputs, output_plain_embedding=True)
    assert outputs.last_hidden_state.shape == (1, 2, 384)  # 50 frames -> 2, features.16 averaged over frequency
    torch.testing.assert_close(outputs.pooler_output, outputs.plain_embedding, rtol=0, atol=0)
    labels = torch.zeros(1, 527)
    output = model(**inputs, labels=labels)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, labels)
    torch.testing.assert_close(output.loss, expected)


def test_fusion_classifier_reads_the_fused_embedding():
    model = random_model(classifier_input="fusion", fusion_layers=[17])
    assert model.classifier.in_features == 1536
    inputs = EfficientATFeatureExtractor()(noise(8000, 7), sampling_rate=32000, return_tensors="pt")
    with torch.no_grad():
        expected = model.classifier(model.efficientat(**inputs).pooler_output)
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"fusion_layers": [0]}, "layer k \\+ 1 = features.k"),
        ({"fusion_layers": [18]}, "fusion_layers must be layer numbers 1-17"),
        ({"width_mult": 0}, "width_mult must be positive"),
        ({"pooling": "median"}, "pooling must be one of"),
        ({"embedding_type": "cls"}, "embedding_type must be one of"),
    ],
)
def test_bad_config(options, message):
    with pytest.raises(ValueError, match=message):
        EfficientATFusionConfig(**options)


@pytest.mark.parametrize(
    "audio, rate, message",
    [
        (np.zeros(32000, np.float32), 16000, "expects 32000 Hz"),
        (np.zeros(513, np.float32), 32000, "needs at least 514 samples"),
        (np.zeros((32000, 2), np.float32), 32000, "2-channel"),
        (np.zeros(32000, np.uint16), 32000, "dtype uint16"),  # int16 PCM is scaled, see test_input_paths
        (np.full(32000, np.nan, np.float32), 32000, "NaN"),
    ],
)
def test_bad_audio(audio, rate, message):
    with pytest.raises(ValueError, match=message):
        EfficientATFeatureExtractor()(audio, sampling_rate=rate)


def test_bad_model_input():
    model = EfficientATFusionModel(EfficientATFusionConfig())
    with pytest.raises(ValueError, match=r"log-mel \[batch, frames, 128\]"):
        model(torch.zeros(1, 128, 100))  # EfficientAT's own [mel, time] order
    with pytest.raises(ValueError, match="no valid frames"):
        model(torch.zeros(2, 100, 128), attention_mask=torch.tensor([[1] * 100, [0] * 100]))
