"""Random checkpoints in each backbone's original published layout, for converter and hub tests."""

import torch
from panns_reference import random_panns_cnn14


def cnn14_checkpoint(path, sampling_rate):
    torch.save({"iteration": 0, "model": random_panns_cnn14(sampling_rate, seed=1).state_dict()}, path)


# variant -> function(path) writing a random checkpoint of that variant's source layout
ORIGINAL_CHECKPOINTS = {
    "cnn14-16k-fusion-3-6": lambda path: cnn14_checkpoint(path, 16000),
    "cnn14-32k-fusion-3-6": lambda path: cnn14_checkpoint(path, 32000),
}
