"""The fine-tuning example: Trainer on real spoken digits (FSDD), real EfficientAT weights, frozen backbone."""

import importlib.util

import numpy as np
import torch

from conftest import REPO, shared_path
from modeling_fusion.convert.efficientat import convert
from transformers import AutoModelForAudioClassification, pipeline


def load_example():
    spec = importlib.util.spec_from_file_location("finetune_example", REPO / "examples" / "finetune_audio_classification.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finetune_frozen_backbone_learns_and_serves(tmp_path):
    weights = shared_path("weights", "efficientat_mn04_as.pt")
    data = shared_path("data", "fsdd")
    model_dir = convert(weights, tmp_path / "mn04")
    backbone_before = {k: v.clone() for k, v in AutoModelForAudioClassification.from_pretrained(
        model_dir).base_model.state_dict().items()}
    trainer, metrics = load_example().main(
        ["--model", str(model_dir), "--data", str(data), "--output", str(tmp_path / "digits"), "--freeze-backbone",
         "--limit", "200", "--epochs", "6", "--batch-size", "16", "--learning-rate", "3e-3"])
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0] * 0.8, losses
    assert metrics["eval_accuracy"] > 0.2  # 10 digits: chance is 0.1
    tuned = AutoModelForAudioClassification.from_pretrained(tmp_path / "digits").eval()
    for key, value in tuned.base_model.state_dict().items():  # frozen: weights and BatchNorm statistics unchanged
        torch.testing.assert_close(value, backbone_before[key], rtol=0, atol=0)
    assert tuned.config.classifier_input == "fusion" and sorted(tuned.config.label2id) == [str(d) for d in range(10)]
    classify = pipeline("audio-classification", model=str(tmp_path / "digits"), trust_remote_code=True)
    audio = np.zeros(32000, np.float32)
    audio[:16000] = np.sin(np.arange(16000) * 0.05).astype(np.float32)
    top = classify(audio, top_k=10)
    assert sorted(entry["label"] for entry in top) == [str(d) for d in range(10)]
    np.testing.assert_allclose(sum(entry["score"] for entry in top), 1.0, rtol=1e-5)
