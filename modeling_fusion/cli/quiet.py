"""Console output of the command-line tools: no per-load progress bars, no bar floods in logs."""

from tqdm.auto import tqdm


def quiet_transformers():
    """Hide transformers' and huggingface_hub's progress bars ("Loading weights", "Writing model shards",
    downloads): every model load and save printed them (`transformers.utils.logging.disable_progress_bar`)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def progress(iterable=None, **kwargs):
    """A tqdm bar on a terminal; none when stderr is not one (a log file or CI: tqdm's `disable=None`),
    where each refresh would add another line."""
    return tqdm(iterable, disable=None, **kwargs)
