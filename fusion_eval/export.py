"""`fusion-eval --export-classifier`: a trained linear probe as a ForAudioClassification folder.

The probe's StandardScaler is folded into its linear layer, and the layer becomes the classifier on
the model's fused embedding (`classifier_input="fusion"`). The probe saw clips fixed to the task's
`unit_sec` (test clips: the first `unit_sec` seconds, zero-padded at the end), so the folder's feature
extractor gets `fixed_clip_seconds = unit_sec` (preprocessor_config.json) and applies the same rule to
every input; config.json records it as `probe_clip`. `pipeline("audio-classification")` on the folder
then predicts exactly what the probe predicted, on whole clips too, and the folder is one Hub push away.
"""

import torch
from torch import nn
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from modeling_fusion.convert.save_folder import save_model_folder


def export_classifier(model_id, export, output, unit_sec, revision=None, trust_remote_code=False):
    """Write the folder; returns `export` with the arrays replaced by the folder path (for results.json).

    unit_sec: the clip length in seconds the probe was trained and tested on (the task's `unit_sec`).
    """
    classes = export["classes"]
    model = AutoModelForAudioClassification.from_pretrained(
        model_id, revision=revision, trust_remote_code=trust_remote_code, classifier_input="fusion",
        fusion_layers=export["layers"], embedding_type="fusion", problem_type="single_label_classification",
        id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)},
        ignore_mismatched_sizes=True)
    if not isinstance(model.classifier, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear classifier on the fused embedding to export into")
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(export["weight"]))
        model.classifier.bias.copy_(torch.as_tensor(export["bias"]))
    extractor = AutoFeatureExtractor.from_pretrained(model_id, revision=revision, trust_remote_code=trust_remote_code)
    extractor.fixed_clip_seconds = float(unit_sec)
    model.config.probe_clip = {"seconds": float(unit_sec), "crop": "start", "pad": "zeros at the end"}
    save_model_folder(model.eval(), extractor, output)
    summary = {key: value for key, value in export.items() if key not in ("weight", "bias")}
    return {**summary, "folder": str(output), "clip": model.config.probe_clip}
