"""Top-1 accuracy as a local `evaluate` module: `evaluate.load(path_to_this_file)`, no Hub needed."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Fraction of predictions equal to the references (top-1 accuracy of a linear probe)."
_INPUTS = """
Args:
    predictions: predicted class indices (int).
    references: true class indices (int).
Returns:
    accuracy: float in [0, 1].
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if predictions.size == 0:
            raise ValueError("accuracy of an empty set is undefined: give at least one prediction")
        return {"accuracy": float((predictions == references).mean())}
