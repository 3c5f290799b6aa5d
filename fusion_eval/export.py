"""`fusion-eval --export-classifier`: a trained linear probe as a ForAudioClassification folder.

The probe's StandardScaler is folded into its linear layer, and the layer becomes the classifier on
the model's fused embedding (`classifier_input="fusion"`). A model of this package gives its own
ForAudioClassification class; a plain transformers encoder (e.g. facebook/wav2vec2-base, probed inside an
`EncoderFusionModel`) gives an `EncoderFusionForAudioClassification` with the probed layers as its fusion.

The probe saw clips fixed to the task's `unit_sec` (test clips: the first `unit_sec` seconds, zero-padded
at the end). config.json records it as `probe_clip`, and the folder's `pipeline("audio-classification")`
(`pipeline_probe_classification.ProbeClassificationPipeline`) applies it to every input before the feature
extractor, so the pipeline predicts exactly what the probe predicted, on whole clips too, whatever the
extractor. This package's extractors also get `fixed_clip_seconds = unit_sec` (preprocessor_config.json), so
`model(**extractor(audio))` does the same; transformers' own extractors cannot fix clip lengths, so with them
fix the clip yourself (`audio_input.fix_length`) or use the pipeline.
"""

import inspect

import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification
from transformers.dynamic_module_utils import custom_object_save

from modeling_fusion.convert.save_folder import follow_umask, save_model_folder
from modeling_fusion.modeling_encoder_fusion import (
    EncoderFusionForAudioClassification, EncoderFusionModel, load_encoder_feature_extractor)
from modeling_fusion.pipeline_probe_classification import ProbeClassificationPipeline


def export_classifier(model_id, export, output, unit_sec, revision=None, trust_remote_code=False):
    """Write the folder; returns `export` with the arrays replaced by the folder path (for results.json).

    model_id: the model fusion-eval probed (a folder or Hub id: this package's, or a plain transformers encoder).
    export: runner's export dict (classes, layers, weight [C, D], bias [C], ...). unit_sec: the clip length in
    seconds the probe was trained and tested on (the task's `unit_sec`). Raises ValueError when the model has
    no linear classifier of the probe's width on its fused embedding.
    """
    classes = export["classes"]
    head = dict(problem_type="single_label_classification", id2label=dict(enumerate(classes)),
                label2id={c: i for i, c in enumerate(classes)})
    options = dict(revision=revision, trust_remote_code=trust_remote_code)
    if hasattr(AutoConfig.from_pretrained(model_id, **options), "fusion_layers"):  # a folder of this package
        model = AutoModelForAudioClassification.from_pretrained(
            model_id, classifier_input="fusion", fusion_layers=export["layers"], embedding_type="fusion",
            ignore_mismatched_sizes=True, **head, **options)
        extractor = AutoFeatureExtractor.from_pretrained(model_id, **options)
    else:  # a plain encoder: its own ...ForSequenceClassification would put a projection before the classifier
        base = EncoderFusionModel.from_encoder_pretrained(model_id, fusion_layers=export["layers"], **options)
        base.config.update({"classifier_input": "fusion", **head})
        model = EncoderFusionForAudioClassification(base.config)
        model.encoder_fusion.load_state_dict(base.state_dict())
        extractor = load_encoder_feature_extractor(model_id, **options)
    weight, bias = torch.as_tensor(export["weight"]), torch.as_tensor(export["bias"])
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, torch.nn.Linear) or classifier.weight.shape != weight.shape:
        raise ValueError(f"{type(model).__name__} of {model_id} has no linear classifier of the probe's shape "
                         f"{tuple(weight.shape)} on the fused embedding of layers {export['layers']} to export into "
                         f"(it has {classifier})")
    with torch.no_grad():
        classifier.weight.copy_(weight)
        classifier.bias.copy_(bias)
    if "fixed_clip_seconds" in inspect.signature(type(extractor).__init__).parameters:  # this package's extractors
        extractor.fixed_clip_seconds = float(unit_sec)
    model.config.probe_clip = {"seconds": float(unit_sec), "crop": "start", "pad": "zeros at the end"}
    save_model_folder(model.eval(), extractor, output)
    model.config.custom_pipelines["audio-classification"] = {
        "impl": f"{ProbeClassificationPipeline.__module__.rsplit('.', 1)[-1]}.{ProbeClassificationPipeline.__name__}",
        "pt": ["AutoModelForAudioClassification"], "type": "audio"}
    model.config.save_pretrained(output)
    custom_object_save(ProbeClassificationPipeline, output)
    follow_umask(output)
    summary = {key: value for key, value in export.items() if key not in ("weight", "bias")}
    return {**summary, "folder": str(output), "clip": model.config.probe_clip}
