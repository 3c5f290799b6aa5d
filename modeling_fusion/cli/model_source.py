"""Check a model argument (a local folder or a Hub id) before loading it, so every CLI fails at once.

Without this, a mistyped folder is taken for a Hub id and transformers spends ~30 s retrying the Hub
before an error that never says the folder is missing.
"""

import os
from pathlib import Path


def looks_local(model):
    """True when `model` reads as a path rather than a Hub id ("org/name"): it starts with ".", "/" or
    "~", has a backslash or more than one "/", or its first component is an existing local folder."""
    text = str(model)
    parts = text.split("/")
    return (isinstance(model, Path) or text.startswith((".", "/", "~")) or "\\" in text or len(parts) > 2
            or (len(parts) == 2 and Path(parts[0]).expanduser().is_dir()))


def check_model_source(model, revision=None):
    """Raise ValueError with one clear line unless `model` is an existing folder or a reachable Hub id.

    model: a folder (str/Path) or a Hub id; revision: the Hub revision to check. A Hub id already in
    the local Hub cache passes without network (also with HF_HUB_OFFLINE=1).
    """
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise ValueError(f"model folder {text} is a file, not a folder; give the folder that holds config.json.")
    if looks_local(model):
        raise ValueError(
            f"model folder {text} does not exist. Check the path, or write the folder first with "
            "`python -m modeling_fusion.hub build ...` or `python -m modeling_fusion.convert ...`."
        )
    import huggingface_hub
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        huggingface_hub.utils.validate_repo_id(text)
    except HFValidationError:
        raise ValueError(f"model folder {text} does not exist, and it is not a valid Hub id (org/name).") from None
    if huggingface_hub.try_to_load_from_cache(text, "config.json", revision=revision) is not None:
        return
    try:
        huggingface_hub.model_info(text, revision=revision, timeout=10)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ValueError(f"model folder {text} does not exist, and the Hub has no model {text!r}"
                         f"{f' at revision {revision}' if revision else ''}.") from None
    except Exception as error:  # offline mode, DNS, timeouts, proxies: httpx and hub errors alike
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        reason = "HF_HUB_OFFLINE is set" if offline else f"{type(error).__name__}: {error}"
        raise ValueError(
            f"model folder {text} does not exist, and the Hugging Face Hub cannot be reached to load it as a "
            f"Hub id ({reason}); it is not in the local Hub cache either."
        ) from None


def load_pretrained(model_id, hint):
    """(AutoModel in eval mode, AutoFeatureExtractor) of a folder or Hub id, remote code trusted. Raises
    ValueError "cannot load MODEL (transformers' reason)" followed by `hint` (how to make such a folder) when
    transformers cannot load it (no weights, no config, Hub unreachable)."""
    from transformers import AutoFeatureExtractor, AutoModel

    try:
        return (AutoModel.from_pretrained(model_id, trust_remote_code=True).eval(),
                AutoFeatureExtractor.from_pretrained(model_id, trust_remote_code=True))
    except OSError as error:
        raise ValueError(f"cannot load {model_id!r}: {str(error).rstrip('.')}. {hint}") from None
