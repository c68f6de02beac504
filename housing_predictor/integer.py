"""Integer-only inference of the linear model (Jacob et al. 2018, arXiv:1712.05877): pure numpy, no I/O.

The product runs in integers, as on an integer engine (ONNX Runtime's ``MatMulInteger``, an NPU):

    centered  = X - input_mean                                 float32, the scaler's shift
    x_q       = clip(rint(centered / input_step) + input_zero_point, -128, 127)     int8
    acc       = x_q @ weight_q + bias_q - input_zero_point @ weight_q               int32
    y         = acc * output_scale                             the one rescale to float

``input_step`` (n_features,) is the scaler's scale times the grid step of each standardized input,
so standardizing costs one float subtraction before the inputs are quantized. The step of each
input is folded into the weights (``weight_j * step_j`` is what ``weight_q`` quantizes, on one
symmetric int8 grid of scale ``output_scale``), so the accumulator needs one scale only. The zero
points' term ``input_zero_point @ weight_q`` is a constant, folded into the int32 bias, as in the
paper's equation (7): the accumulation has no zero point left to subtract per row.

The grids are calibrated on the training split: per feature (a clipping range for each
standardized input) or per tensor (one range for all). ``mse`` (the default) chooses each range
to minimize the mean squared deviation of the integer model's predictions from the float model's;
``minmax`` takes the training range; ``endpoint`` estimates where each range truly ends, beyond
the training extremes. benchmarks/integer_calibration.py compares them on held-out folds.

Overflow is impossible: |x_q| <= 128 and |weight_q| <= 127, so with n features |x_q @ weight_q|
<= 128 * 127 * n (130,048 for 8), and ``accumulator_bound`` checks that the bias keeps the sum
inside int32.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

import numpy as np

from housing_predictor.errors import PipelineError
from housing_predictor.linear import LinearParams
from housing_predictor.quantization import SCALE_SEARCH_FACTORS

INPUT_MIN, INPUT_MAX = -128, 127  # int8 inputs, asymmetric (a zero point per grid)
WEIGHT_MAX = 127  # int8 weights, symmetric: codes in [-127, 127], zero point 0
INT32_MAX = 2**31 - 1
# Clipping ranges the calibration tries for a standardized input: the quantiles at p and 1 - p of
# the training split, for each p here (0 is min/max). Both ends are searched independently.
CLIP_QUANTILES = (0.0, 1e-4, 3e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2)
MAX_CALIBRATION_SWEEPS = 5  # coordinate-descent passes; it stops at the first that changes nothing


class Options(Protocol):
    """The integer model's options (stages/params.py's ``IntegerOnly``, validated there)."""

    granularity: Literal["per_feature", "per_tensor"]
    calibration: Literal["mse", "minmax", "endpoint"]
    weight_scale_search: bool
    bias_correction: bool


class InputGrid(NamedTuple):
    """The int8 grids of the standardized inputs: ``z_j ~ (code_j - zero_point_j) * step_j``."""

    step: np.ndarray  # (n_features,) float32, > 0
    zero_point: np.ndarray  # (n_features,) int8


def input_grid(low: np.ndarray, high: np.ndarray) -> InputGrid:
    """The asymmetric int8 grid spanning [low_j, high_j], widened to hold 0 (so the zero point is
    an int8 code); steps rounded to float32, as the model file stores them."""
    low = np.minimum(np.asarray(low, dtype=np.float64), 0.0)
    high = np.maximum(np.asarray(high, dtype=np.float64), 0.0)
    span = np.where(high > low, high - low, 1.0)
    step = (span / (INPUT_MAX - INPUT_MIN)).astype(np.float32)
    zero_point = np.clip(np.rint(INPUT_MIN - low / step.astype(np.float64)), INPUT_MIN, INPUT_MAX).astype(np.int8)
    return InputGrid(step, zero_point)


def unsaturated_codes(X: np.ndarray, input_mean: np.ndarray, input_step: np.ndarray, input_zero_point: np.ndarray) -> np.ndarray:
    """The codes (n_rows, n_features) of raw features X before saturation, in float32 as ONNX
    Runtime computes them (Sub, then QuantizeLinear: divide, round half to even, add the zero point)."""
    centered = np.asarray(X, dtype=np.float32) - input_mean.astype(np.float32)
    return np.rint(centered / input_step.astype(np.float32)) + input_zero_point.astype(np.float32)


def quantize_inputs(X: np.ndarray, input_mean: np.ndarray, input_step: np.ndarray, input_zero_point: np.ndarray) -> np.ndarray:
    """int8 codes (n_rows, n_features) of raw features X: ``unsaturated_codes``, saturated to int8."""
    return np.clip(unsaturated_codes(X, input_mean, input_step, input_zero_point), INPUT_MIN, INPUT_MAX).astype(np.int8)


def accumulate(codes: np.ndarray, weight_q: np.ndarray, bias_q: np.ndarray) -> np.ndarray:
    """The int32 accumulator (n_rows,): ``codes @ weight_q + bias_q``, integers only. ``bias_q``
    (1,) int32 already holds the zero points' term. int32 end to end: numpy keeps the dtype of
    int32 operands, and the bound of ``accumulator_bound`` rules out wrap-around."""
    if codes.dtype != np.int8 or weight_q.dtype != np.int8 or bias_q.dtype != np.int32:
        raise PipelineError(
            f"integer model needs int8 inputs and weights and an int32 bias, got {codes.dtype}, {weight_q.dtype}, {bias_q.dtype}"
        )
    return codes.astype(np.int32) @ weight_q.astype(np.int32) + bias_q[0]


def accumulator_bound(n_features: int, bias_q: int) -> int:
    """The largest |accumulator| any input can produce: every code at -128 against weights at 127."""
    return (-INPUT_MIN) * WEIGHT_MAX * n_features + abs(int(bias_q))


class IntegerModel(NamedTuple):
    """An integer-only model as the predictor and the server use it: ``predict`` like LinearParams'."""

    tensors: dict[str, np.ndarray]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return predict(self.tensors, X)


def predict(tensors: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Predictions (n_rows,) float64 of an integer model's tensors: int32 accumulator, one rescale."""
    codes = quantize_inputs(X, tensors["input_mean"], tensors["input_step"], tensors["input_zero_point"])
    return accumulate(codes, tensors["weight_q"], tensors["bias_q"]).astype(np.float64) * float(tensors["output_scale"][0])


def saturated(tensors: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Rows (n_rows,) bool with an input outside its int8 grid, so clipped: where the integer
    model departs most from the float one."""
    scaled = unsaturated_codes(X, tensors["input_mean"], tensors["input_step"], tensors["input_zero_point"])
    return np.any((scaled < INPUT_MIN) | (scaled > INPUT_MAX), axis=1)


def _weight_codes(folded: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(folded / scale), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)


def _float32_positive(value: float, what: str) -> np.float32:
    stored = np.float32(value)
    if not (np.isfinite(stored) and stored > 0):
        raise PipelineError(f"integer model: {what} {value:g} is outside float32's range")
    return stored


def build(
    model: LinearParams, grid: InputGrid, train_X: np.ndarray, *, weight_scale_search: bool, bias_correction: bool
) -> dict[str, np.ndarray]:
    """The integer model's tensors for ``model`` (standardized, its scaler float32-representable)
    with input grids ``grid``.

    The folded weights ``weight_j * step_j`` go on one symmetric int8 grid, whose scale is
    searched (``weight_scale_search``) for the least squared deviation from the float
    predictions on ``train_X``; the float bias goes to int32 at that scale, after moving the
    mean deviation into it (``bias_correction``), then takes the zero points' term.
    """
    input_mean = model.input_mean.astype(np.float32)
    input_step = (model.input_scale.astype(np.float32) * grid.step).astype(np.float32)
    folded = model.weight * grid.step.astype(np.float64)
    target = model.predict(train_X)
    codes = quantize_inputs(train_X, input_mean, input_step, grid.zero_point).astype(np.float64)
    centered_codes = codes - grid.zero_point.astype(np.float64)

    def deviation(scale: float) -> np.ndarray:
        return centered_codes @ (_weight_codes(folded, scale).astype(np.float64) * scale) + model.bias - target

    largest = float(np.max(np.abs(folded), initial=0.0))
    base = largest / WEIGHT_MAX if largest > 0 else 1.0
    scales = [base * f for f in SCALE_SEARCH_FACTORS] if weight_scale_search else [base]
    scales = [float(_float32_positive(s, "weight scale")) for s in scales]
    # deviation = [codes, bias - target] @ [weights; 1], so its mean square (its variance when
    # bias correction removes the mean) is a quadratic form over the moments of those columns:
    # each candidate costs a 9 x 9 product instead of a pass over the training rows.
    columns = np.column_stack([centered_codes, model.bias - target])
    if bias_correction:
        columns = columns - columns.mean(axis=0)
    moments = columns.T @ columns / len(columns)

    def cost(scale: float) -> float:
        vector = np.append(_weight_codes(folded, scale).astype(np.float64) * scale, 1.0)
        return float(vector @ moments @ vector)

    scale = min(scales, key=cost)  # min keeps the first of equals: deterministic
    weight_q = _weight_codes(folded, scale)
    bias = model.bias - (float(deviation(scale).mean()) if bias_correction else 0.0)
    bias_q = int(np.rint(bias / scale)) - int(grid.zero_point.astype(np.int64) @ weight_q.astype(np.int64))
    if accumulator_bound(len(weight_q), bias_q) > INT32_MAX:
        raise PipelineError(f"integer model: bias {bias:g} at scale {scale:g} does not fit the int32 accumulator")
    return {
        "input_mean": input_mean,
        "input_step": input_step,
        "input_zero_point": grid.zero_point,
        "weight_q": weight_q,
        "bias_q": np.array([bias_q], dtype=np.int32),
        "output_scale": np.array([scale], dtype=np.float32),
    }


def _input_error(z: np.ndarray, low: float, high: float) -> np.ndarray:
    """How far the int8 grid over [low, high] moves a standardized input's values (float64)."""
    grid = input_grid(np.array([low]), np.array([high]))
    step, zero = float(grid.step[0]), float(grid.zero_point[0])
    codes = np.clip(np.rint(z / step) + zero, INPUT_MIN, INPUT_MAX)
    return (codes - zero) * step - z


def calibrate(model: LinearParams, train_X: np.ndarray, *, granularity: str, calibration: str) -> InputGrid:
    """Input grids for ``model`` from the training split: min/max, the estimated endpoints, or
    (``mse``) the clipping ranges among the quantiles of CLIP_QUANTILES that minimize the mean
    squared deviation of the predictions, ``mean((sum_j weight_j * error_j - mean)^2)`` (the mean
    goes to the bias), with exact weights.

    Per feature: coordinate descent, one feature's range at a time against the others' current
    errors. Per tensor: one range for every standardized input, searched jointly.
    """
    z = model.inputs(train_X)  # the model is standardized: quantize_integer gives it a scaler
    values = z.reshape(-1, 1) if granularity == "per_tensor" else z  # per tensor: one column of all
    lows = np.quantile(values, CLIP_QUANTILES, axis=0)  # (n_quantiles, n_columns)
    highs = np.quantile(values, [1 - p for p in CLIP_QUANTILES], axis=0)
    if calibration == "minmax":
        return _grid_for(lows[0], highs[0], z.shape[1])
    if calibration == "endpoint":
        # Rows yet unseen reach beyond the training split's extremes: estimate where the range
        # truly ends from its two most extreme values, 2 x(n) - x(n-1) (Robson and Whitlock's
        # 1964 endpoint estimate), and likewise at the low end.
        ordered = np.sort(values, axis=0)
        return _grid_for(2 * ordered[0] - ordered[1], 2 * ordered[-1] - ordered[-2], z.shape[1])
    if granularity == "per_tensor":
        candidates = [(low, high) for low in lows[:, 0] for high in highs[:, 0]]

        def total_cost(pair) -> float:
            error = np.stack([_input_error(z[:, j], *pair) for j in range(z.shape[1])], axis=1) @ model.weight
            return float(np.var(error))

        low, high = min(candidates, key=total_cost)
        return _grid_for(np.array([low]), np.array([high]), z.shape[1])
    chosen = [(lows[0, j], highs[0, j]) for j in range(z.shape[1])]
    errors = np.stack([model.weight[j] * _input_error(z[:, j], *chosen[j]) for j in range(z.shape[1])], axis=1)
    for _ in range(MAX_CALIBRATION_SWEEPS):
        before = list(chosen)
        for j in range(z.shape[1]):
            others = errors.sum(axis=1) - errors[:, j]
            candidates = [(low, high) for low in lows[:, j] for high in highs[:, j]]
            contributions = [model.weight[j] * _input_error(z[:, j], *pair) for pair in candidates]
            best = min(range(len(candidates)), key=lambda i: float(np.var(others + contributions[i])))
            chosen[j], errors[:, j] = candidates[best], contributions[best]
        if chosen == before:
            break
    low, high = np.array(chosen).T
    return input_grid(low, high)


def _grid_for(low: np.ndarray, high: np.ndarray, n_features: int) -> InputGrid:
    return input_grid(np.broadcast_to(low, n_features), np.broadcast_to(high, n_features))


def quantize_integer(model: LinearParams, train_X: np.ndarray, options: Options) -> dict[str, np.ndarray]:
    """The tensors of the integer-only 8-bit model of ``model``, calibrated on ``train_X``. The
    model's scaler (or, without one, the training means) shifts the inputs in float32 first."""
    if model.standardized:
        input_mean, input_scale = model.input_mean, model.input_scale
    else:
        # Without a scaler, shift the inputs by the training means all the same: an int8 grid
        # must hold 0, and Latitude's [32.5, 42] widened to [0, 42] would waste 3/4 of it.
        input_mean, input_scale = train_X.mean(axis=0), np.ones(train_X.shape[1])
    # The file keeps the scaler in float32 (as the weight-only models do): re-express the float
    # model over exactly that scaler, so calibration and build see what inference does.
    model = model.restandardized(
        input_mean.astype(np.float32).astype(np.float64), input_scale.astype(np.float32).astype(np.float64)
    )
    grid = calibrate(model, train_X, granularity=options.granularity, calibration=options.calibration)
    return build(model, grid, train_X, weight_scale_search=options.weight_scale_search, bias_correction=options.bias_correction)
