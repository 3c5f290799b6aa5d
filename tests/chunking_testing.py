"""Tiny random models of every backbone for the chunking, HEAR and X-ARES tests."""

import numpy as np
import torch

from modeling_fusion import BACKBONES

TINY = {
    "cnn14": dict(block_channels=(4, 8, 8, 8, 8, 8)),
    "efficientat": dict(width_mult=0.1),
    "ast": dict(ast_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
                fusion_layers=(1, 2)),
    "vggish": dict(),  # VGGish has one size
    "yamnet": dict(),  # YAMNet has one size (3.7M parameters; ~0.1 s for 12 s of audio)
}


def tiny_model(backbone, seed=0, **options):
    """(base model in eval mode, feature extractor) with random weights of useful magnitude: torch's default
    layer init (post_init's 0.02-std normals make CNN activations vanish) and random BatchNorm statistics."""
    config_class, model_class, _, extractor_class = BACKBONES[backbone]
    torch.manual_seed(seed)
    model = model_class(config_class(**{**TINY[backbone], **options})).eval()
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "reset_parameters") and not isinstance(module, torch.nn.LayerNorm):
                module.reset_parameters()
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.2, 0.2)
    return model, extractor_class()


def noise(seconds, rate, seed=0):
    return (np.random.default_rng(seed).standard_normal(int(round(seconds * rate))) * 0.1).astype(np.float32)
