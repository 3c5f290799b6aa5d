"""Loss of the audio-classification heads, chosen by `config.problem_type` (remote code: torch only)."""

import torch.nn.functional as F


def classification_loss(logits, labels, config):
    """Cross-entropy for single-label, BCE-with-logits for multi-label, MSE for regression.

    Without a `problem_type`, float labels shaped like the logits are multi-label, the rest single-label.
    """
    problem_type = config.problem_type
    if problem_type is None:
        multi = labels.dtype.is_floating_point and labels.shape == logits.shape
        problem_type = "multi_label_classification" if multi else "single_label_classification"
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    if problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).squeeze(-1))
    return F.cross_entropy(logits, labels.long())
