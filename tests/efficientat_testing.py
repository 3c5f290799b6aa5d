"""Random-weight EfficientAT models whose activations keep a useful scale, for tests without the checkpoint."""

import numpy as np
import torch

from modeling_fusion.configuration_efficientat import EfficientATFusionConfig
from modeling_fusion.feature_extraction_efficientat import EfficientATFeatureExtractor
from modeling_fusion.modeling_efficientat import EfficientATForAudioClassification


def noise(samples, seed):
    return (0.1 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


@torch.no_grad()
def random_model(width_mult=0.4, seed=0, **options):
    """A model with PyTorch's default init and BatchNorm running statistics measured on noise.

    With the running statistics at 0 / 1 the activations would vanish through 17 stages (logits
    near 1e-23), so value comparisons would pass whatever the model computed.
    """
    torch.manual_seed(seed)
    model = EfficientATForAudioClassification(EfficientATFusionConfig(width_mult=width_mult, num_labels=527, **options))
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.reset_parameters()
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one pass sets the statistics of that batch
    inputs = EfficientATFeatureExtractor()([noise(16000, seed), noise(16000, seed + 1)], sampling_rate=32000,
                                           return_tensors="pt")
    model.train()(**inputs)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.01
    return model.eval()
