"""EfficientAT mn04_as against the original implementation's outputs (../shared/golden/efficientat_mn04_as.npz).

Tolerances (from golden/README.md): the reference is float32 on CPU; an independent float32 port
reproduces it to 0-4e-5 (thread count alone moves logits by 3e-6, and the reference's float32 mel
bank moves log-mel by up to 4.4e-5 against an exact one). So log-mel, logits, channel means and the
embedding use atol 1e-4, full feature maps (|x| up to 14) atol 1e-4 with rtol 1e-5.
"""

import numpy as np
import pytest
import torch
from conftest import shared_path

from modeling_fusion.convert.audioset_labels import load_audioset_labels
from modeling_fusion.convert.checkpoints import load_torch_checkpoint
from modeling_fusion.configuration_efficientat import NUM_STAGES, EfficientATFusionConfig
from modeling_fusion.convert.efficientat import key_mapping
from modeling_fusion.feature_extraction_efficientat import EfficientATFeatureExtractor
from modeling_fusion.modeling_efficientat import EfficientATForAudioClassification

ATOL = 1e-4
MAP_RTOL = 1e-5


@pytest.fixture(scope="module")
def golden():
    return np.load(shared_path("golden", "efficientat_mn04_as.npz"))


@pytest.fixture(scope="module")
def model():
    state_dict = load_torch_checkpoint(shared_path("weights", "efficientat_mn04_as.pt"))
    model = EfficientATForAudioClassification(EfficientATFusionConfig(width_mult=0.4, num_labels=527)).eval()
    mapping = key_mapping(model)
    model.load_state_dict({mapping[key]: value for key, value in state_dict.items()}, strict=True)
    return model


def golden_input(golden, clip):
    """The reference log-mel [128, T] as our input_values [1, T, 128]."""
    return torch.from_numpy(np.ascontiguousarray(golden[f"{clip}.logmel"].T))[None]


def test_log_mel_matches_reference(golden):
    extractor = EfficientATFeatureExtractor()
    for clip in golden["clip_ids"]:
        ours = extractor(golden[f"{clip}.waveform"], sampling_rate=32000)["input_values"][0]
        reference = golden[f"{clip}.logmel"].T
        assert ours.shape == reference.shape, clip
        np.testing.assert_allclose(ours, reference, rtol=0, atol=ATOL, err_msg=clip)


@torch.no_grad()
def test_network_matches_reference_on_reference_log_mel(golden, model):
    for clip in golden["clip_ids"]:
        values = golden_input(golden, clip)
        maps = model.efficientat.feature_maps(values)
        assert len(maps) == NUM_STAGES
        for k, feature_map in enumerate(maps):
            np.testing.assert_allclose(
                feature_map.mean(dim=(2, 3))[0], golden[f"{clip}.features.{k}.mean"], rtol=0, atol=ATOL,
                err_msg=f"{clip} features.{k}",
            )
        embedding = model.efficientat(values, output_plain_embedding=True).plain_embedding[0]
        np.testing.assert_allclose(embedding, golden[f"{clip}.embedding"], rtol=0, atol=ATOL, err_msg=clip)
        np.testing.assert_allclose(model(values).logits[0], golden[f"{clip}.logits"], rtol=0, atol=ATOL, err_msg=clip)


@torch.no_grad()
def test_full_maps_and_hidden_states_of_shortest_clip(golden, model):
    clip = str(golden["shortest_clip_id"])
    values = golden_input(golden, clip)
    maps = model.efficientat.feature_maps(values)
    hidden = model.efficientat(values, output_hidden_states=True).hidden_states
    assert len(hidden) == NUM_STAGES + 1
    # 15 frames -> ceil(15 / 32) = 1 fused frame: the time maximum of each map, flattened channel-major
    np.testing.assert_allclose(hidden[0][0, 0], golden[f"{clip}.logmel"].max(axis=1), rtol=0, atol=ATOL)
    for k, feature_map in enumerate(maps):
        reference = golden[f"{clip}.features.{k}"]
        np.testing.assert_allclose(feature_map[0], reference, rtol=MAP_RTOL, atol=ATOL, err_msg=f"features.{k}")
        assert hidden[k + 1].shape == (1, 1, reference.shape[0] * reference.shape[1])
        np.testing.assert_allclose(
            hidden[k + 1][0, 0], reference.max(axis=2).reshape(-1), rtol=MAP_RTOL, atol=ATOL, err_msg=f"layer {k + 1}"
        )


@torch.no_grad()
def test_end_to_end_logits_and_top3_labels(golden, model):
    extractor = EfficientATFeatureExtractor()
    names = load_audioset_labels(shared_path("weights", "audioset_labels.csv"))
    for clip in golden["clip_ids"]:
        inputs = extractor(golden[f"{clip}.waveform"], sampling_rate=32000, return_tensors="pt")
        logits = model(**inputs).logits[0].numpy()
        reference = golden[f"{clip}.logits"]
        np.testing.assert_allclose(logits, reference, rtol=0, atol=ATOL, err_msg=clip)
        ours = [names[i] for i in np.argsort(-logits)[:3]]
        assert ours == [names[i] for i in np.argsort(-reference)[:3]], clip
