"""The linear model every stage and the predictor share: pure numpy, no I/O.

A model maps raw features ``X`` (n_rows, n_features), float64, to predictions (n_rows,) in the
target's unit ($100,000): ``((X - input_mean) / input_scale) @ weight + bias``. The scaler is
optional; without it the model is ``X @ weight + bias``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# The data set's features, in scikit-learn's order: what every model reads (each once, in any order
# in a CSV), and the columns of the split files.
FEATURES = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")
# The target, MedHouseVal, is in units of $100,000: metrics state tiny deviations in dollars.
TARGET_UNIT_USD = 100_000


class LinearParams(NamedTuple):
    weight: np.ndarray  # (n_features,) float64
    bias: float
    input_mean: np.ndarray | None = None  # (n_features,) float64, or None without a scaler
    input_scale: np.ndarray | None = None

    @property
    def standardized(self) -> bool:
        return self.input_mean is not None

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """What the weights multiply: the features, standardized when the model has a scaler."""
        if self.input_mean is None:
            return X
        return (X - self.input_mean) / self.input_scale

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (n_rows,) for ``X`` (n_rows, n_features) float64, columns in the model's order.

        Summed feature by feature, left to right, with elementwise numpy operations: each row's
        result depends on that row alone, bit for bit. A BLAS matrix-vector product picks its
        kernel (and so its order of additions) by the number of rows, so the same row could come
        out different in the last bit alone than within a batch.
        """
        inputs = self.inputs(X)
        total = inputs[:, 0] * self.weight[0]
        for column in range(1, len(self.weight)):
            total += inputs[:, column] * self.weight[column]
        return total + self.bias

    def folded(self) -> tuple[np.ndarray, float]:
        """The same function as raw-feature weights and bias, ``X @ w + b``, with the scaler folded in."""
        if self.input_mean is None:
            return self.weight, self.bias
        weight = self.weight / self.input_scale
        return weight, float(self.bias - self.input_mean @ weight)

    def raw(self) -> LinearParams:
        """This model without a scaler: what the published schemes quantize (``coef_``, ``intercept_``)."""
        weight, bias = self.folded()
        return LinearParams(weight=weight, bias=bias)

    def restandardized(self, input_mean: np.ndarray, input_scale: np.ndarray) -> LinearParams:
        """The same function over another scaler (e.g. the float32-rounded one a quantized model stores)."""
        folded_weight, folded_bias = self.folded()
        return LinearParams(
            weight=folded_weight * input_scale,
            bias=float(folded_bias + input_mean @ folded_weight),
            input_mean=input_mean,
            input_scale=input_scale,
        )
