"""The linear model every stage and the predictor share: pure numpy, no I/O.

A model maps raw features ``X`` (n_rows, n_features), float64, to predictions (n_rows,) in the
target's unit ($100,000): ``((X - input_mean) / input_scale) @ weight + bias``. The scaler is
optional; without it the model is ``X @ weight + bias``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# The target, MedHouseVal, is in units of $100,000: metrics state tiny deviations in dollars.
TARGET_UNIT_USD = 100_000


# Records here are NamedTuples, not dataclasses: as immutable, and cheaper to define at import,
# which counts in the predictor's start-up (it imports this module, quantization and artifacts).
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
        return self.inputs(X) @ self.weight + self.bias

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
