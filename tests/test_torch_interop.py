"""Optional interop check: the dequantized models load into a plain ``torch.nn.Linear``.

PyTorch is not a project dependency; without it this module is skipped.
"""

from __future__ import annotations

import numpy as np
import pytest

from housing_predictor.quantization import dequantize_model, quantize_model
from stages.params import TrainParams
from stages.train import fit, linear_params

torch = pytest.importorskip("torch", reason="PyTorch not installed; `pip install torch==2.13.0` to run the interop check")

# params.yaml's quantize.q8 / q16 options for the affine scheme
DEFAULT_AFFINE = dict(symmetric=True, signed=True, rounding="nearest", scale_search="mse", bias_correction=True)


@pytest.fixture(scope="module")
def split():
    """(X_train, X_test, the pipeline's standardized float model), on the default split."""
    from sklearn.datasets import fetch_california_housing
    from sklearn.model_selection import train_test_split

    X, y = fetch_california_housing(return_X_y=True)  # scikit-learn's folder, downloading if missing
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=42)
    return X_train, X_test, linear_params(fit(X_train, y_train, TrainParams(standardize=True)))


def torch_linear(weight: np.ndarray, bias: float) -> torch.nn.Linear:
    layer = torch.nn.Linear(len(weight), 1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.asarray(weight, dtype=np.float64)).reshape(1, -1))
        layer.bias.fill_(bias)
    return layer


@pytest.mark.parametrize("layout", ["folded", "scaler_then_linear"])
@pytest.mark.parametrize("bits", [8, 16])
def test_torch_linear_predicts_like_the_dequantized_model(split, bits, layout):
    X_train, X_test, model = split
    dequantized = dequantize_model(quantize_model(model, X_train, bits=bits, scheme="affine", **DEFAULT_AFFINE), "affine")
    inputs = torch.from_numpy(X_test)
    if layout == "folded":  # the scaler folded into raw-feature weights: one Linear layer
        weight, bias = dequantized.folded()
        network = torch_linear(weight, bias)
    else:  # the float32 scaler the file stores, as its own step before the Linear layer
        mean, scale = torch.from_numpy(dequantized.input_mean), torch.from_numpy(dequantized.input_scale)
        linear = torch_linear(dequantized.weight, dequantized.bias)

        def network(x):
            return linear((x - mean) / scale)

    with torch.no_grad():
        predicted = network(inputs).squeeze(1).numpy()
    np.testing.assert_allclose(predicted, dequantized.predict(X_test), rtol=0, atol=1e-6)
