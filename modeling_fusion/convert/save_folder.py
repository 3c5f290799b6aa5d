"""Write a Hub-ready model folder: weights, configs with complete `auto_map`, flat remote code."""

import os
from pathlib import Path

from transformers.dynamic_module_utils import custom_object_save

from ..pipeline_audio_embedding import AudioEmbeddingPipeline


def _class_path(cls):
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def _model_classes(model):
    """(base model class, ForAudioClassification class) of a head model, or of a base model by its
    backbone's registration (VGGish is published as a base model: it has no released classifier)."""
    base = getattr(model, model.base_model_prefix, None)
    if base is not None:
        return type(base), type(model)
    from .. import BACKBONES, EncoderFusionForAudioClassification, EncoderFusionModel

    pairs = [(base, head) for _, base, head, _ in BACKBONES.values()]
    for base_class, head_class in pairs + [(EncoderFusionModel, EncoderFusionForAudioClassification)]:
        if base_class.__name__ == type(model).__name__:
            return base_class, head_class
    raise ValueError(f"{type(model).__name__} is not a model of this package")


def save_model_folder(model, feature_extractor, output_dir):
    """Save `model` (a ForAudioClassification model, or a base model) and its feature extractor so that
    AutoConfig, AutoModel, AutoModelForAudioClassification, AutoFeatureExtractor and the
    "audio-embedding" pipeline all load the folder with trust_remote_code=True.

    `save_pretrained` alone writes only the saved class's own auto entry, so the full map is set here.
    """
    output_dir = Path(output_dir)
    base_class, head_class = _model_classes(model)
    registered = [(type(model.config), "AutoConfig"), (base_class, "AutoModel"),
                  (head_class, "AutoModelForAudioClassification")]
    if not type(feature_extractor).__module__.startswith("transformers."):  # a library extractor loads by its type
        registered.append((type(feature_extractor), "AutoFeatureExtractor"))
    # register_for_auto_class sets a class attribute: undone after saving, so that a later plain save_pretrained
    # of the same class (e.g. a config alone) writes no auto_map it did not ask for
    before = [(cls, cls.__dict__.get("_auto_class")) for cls, _ in registered]
    try:
        for cls, auto_class in registered:
            cls.register_for_auto_class(auto_class)
        _save(model, feature_extractor, output_dir, base_class, head_class)
    finally:
        for cls, previous in before:
            cls._auto_class = previous
    follow_umask(output_dir)
    return output_dir


def _save(model, feature_extractor, output_dir, base_class, head_class):
    model.config.auto_map = {
        "AutoConfig": _class_path(type(model.config)),
        "AutoModel": _class_path(base_class),
        "AutoModelForAudioClassification": _class_path(head_class),
    }
    model.config.custom_pipelines = {
        "audio-embedding": {"impl": _class_path(AudioEmbeddingPipeline), "pt": ["AutoModel"], "type": "audio"}
    }
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(output_dir)
    feature_extractor.save_pretrained(output_dir)
    custom_object_save(AudioEmbeddingPipeline, output_dir)


def follow_umask(folder):
    """Give every file in `folder` the mode the umask gives new files (0644 under umask 022): safetensors
    writes model.safetensors 0600, so others could not read a published folder's weights."""
    umask = os.umask(0)
    os.umask(umask)
    for path in Path(folder).iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)
