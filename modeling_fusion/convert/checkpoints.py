"""Loading original (non-Hugging Face) checkpoints for the converters."""

import logging
import pickle

import torch

logger = logging.getLogger(__name__)


def load_torch_checkpoint(path):
    """torch.load on CPU, tensors only when possible.

    Some published files also pickle training state (PANNs stores its sampler); those fall back to a
    full unpickle with a warning, which is only safe for files from a source you trust.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as error:
        logger.warning(f"{path}: holds non-tensor objects ({type(error).__name__}); loading it with "
                       "weights_only=False. Only do this for checkpoints from a source you trust.")
        return torch.load(path, map_location="cpu", weights_only=False)
