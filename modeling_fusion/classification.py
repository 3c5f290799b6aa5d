"""The audio-classification heads' forward and loss, shared by every backbone (remote code)."""

import torch.nn.functional as F
from transformers.modeling_outputs import SequenceClassifierOutput


def classify(model, input_values, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None):
    """ForAudioClassification forward: `model.classifier` on the backbone's plain embedding
    (`config.classifier_input == "plain"`, the released head) or on the fused embedding (a probe)."""
    return_dict = model.config.return_dict if return_dict is None else return_dict
    plain = model.config.classifier_input == "plain"
    outputs = model.base_model(
        input_values,
        attention_mask=attention_mask,
        output_hidden_states=output_hidden_states,
        output_plain_embedding=plain,
    )
    logits = model.classifier(outputs.plain_embedding if plain else outputs.pooler_output)
    loss = None if labels is None else classification_loss(logits, labels, model.config)
    output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
    return output if return_dict else output.to_tuple()


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
