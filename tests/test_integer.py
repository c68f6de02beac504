"""The integer-only 8-bit model (housing_predictor/integer.py) on the real data and the committed split.

Targets, on the test split against the float model's predictions: |R² drop|
<= 0.02 and rms deviation <= 0.1. The rms target holds on every row whose inputs fall inside the
grids calibrated on the training split; every test row with an input outside them is clipped
(one with AveBedrms 34.07, beyond the training split's maximum 25.6), which the report states.
"""

from __future__ import annotations

from typing import NamedTuple, get_args

import numpy as np
import pytest

from housing_predictor import integer
from housing_predictor.errors import PipelineError
from housing_predictor.linear import LinearParams
from stages import params
from stages.train import fit, linear_params

from conftest import REPO, housing_split

COMMITTED = params.load(REPO / "params.yaml").quantize.q8int  # params.yaml's quantize.q8int
GRANULARITIES = get_args(params.IntegerOnly.model_fields["granularity"].annotation)


def options(**changes) -> params.IntegerOnly:
    return params.IntegerOnly(**{**COMMITTED.model_dump(), **changes})


class Split(NamedTuple):
    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    model: LinearParams  # the pipeline's float model: StandardScaler + LinearRegression


@pytest.fixture(scope="module")
def split() -> Split:
    X_train, X_test, y_train, y_test = housing_split(params.load(REPO / "params.yaml").load_data)
    return Split(X_train, X_test, y_test, linear_params(fit(X_train, y_train, params.Train(standardize=True))))


@pytest.fixture(scope="module")
def tensors(split) -> dict[str, np.ndarray]:
    return integer.quantize_integer(split.model, split.X_train, COMMITTED)


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(1 - np.sum((y_true - y_pred) ** 2) / np.sum((y_true - y_true.mean()) ** 2))


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_model_is_int8_codes_and_int32_bias(tensors):
    assert tensors["weight_q"].dtype == np.int8 and tensors["input_zero_point"].dtype == np.int8
    assert tensors["bias_q"].dtype == np.int32 and tensors["bias_q"].shape == (1,)
    assert tensors["input_step"].dtype == tensors["input_mean"].dtype == tensors["output_scale"].dtype == np.float32
    assert np.all(np.abs(tensors["weight_q"].astype(int)) <= integer.WEIGHT_MAX)  # symmetric: -128 unused


def test_accumulation_is_int32_throughout(split, tensors):
    codes = integer.quantize_inputs(split.X_test, tensors["input_mean"], tensors["input_step"], tensors["input_zero_point"])
    assert codes.dtype == np.int8
    accumulator = integer.accumulate(codes, tensors["weight_q"], tensors["bias_q"])
    assert accumulator.dtype == np.int32
    # The same sums in Python's unbounded integers: nothing was rounded or wrapped.
    exact = [
        sum(int(c) * int(w) for c, w in zip(row, tensors["weight_q"], strict=True)) + int(tensors["bias_q"][0])
        for row in codes[:200]
    ]
    assert accumulator[:200].tolist() == exact


def test_accumulate_refuses_float_operands(tensors):
    codes = np.zeros((2, 8), dtype=np.int8)
    with pytest.raises(PipelineError, match="int8 inputs"):
        integer.accumulate(codes.astype(np.float32), tensors["weight_q"], tensors["bias_q"])
    with pytest.raises(PipelineError, match="int32 bias"):
        integer.accumulate(codes, tensors["weight_q"], tensors["bias_q"].astype(np.float64))


def test_int8_by_int8_over_8_features_cannot_overflow(tensors):
    assert integer.accumulator_bound(8, 0) == 128 * 127 * 8
    assert integer.accumulator_bound(8, int(tensors["bias_q"][0])) < 2**31 - 1
    for code, weight in ((-128, 127), (-128, -127), (127, 127)):  # the extremes reach the bound in int32, unwrapped
        accumulator = integer.accumulate(np.full((1, 8), code, np.int8), np.full(8, weight, np.int8), np.zeros(1, np.int32))
        assert accumulator.dtype == np.int32 and int(accumulator[0]) == 8 * code * weight


def test_bias_that_would_overflow_is_refused(split):
    huge = split.model._replace(bias=1e12)
    with pytest.raises(PipelineError, match="does not fit the int32 accumulator"):
        integer.quantize_integer(huge, split.X_train, COMMITTED)


def test_input_grid_holds_its_range_and_zero():
    """[0.5, 2] and [-3, -1] are widened to hold 0, so 0 is a code: the zero point."""
    grid = integer.input_grid(np.array([-1.0, 0.5, -3.0]), np.array([3.0, 2.0, -1.0]))
    assert grid.zero_point.dtype == np.int8
    ends_and_zero = np.array([[-1.0, 0.0, -3.0], [3.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    codes = integer.unsaturated_codes(ends_and_zero, np.zeros(3), grid.step, grid.zero_point)
    assert codes.tolist() == [[-128] * 3, [127] * 3, grid.zero_point.tolist()]


def test_default_model_meets_the_targets_on_rows_inside_its_grids(split, tensors):
    float_pred = split.model.predict(split.X_test)
    pred = integer.predict(tensors, split.X_test)
    assert abs(r2(split.y_test, float_pred) - r2(split.y_test, pred)) <= 0.02
    inside = ~integer.saturated(tensors, split.X_test)
    assert inside.sum() >= 0.99 * len(inside)
    assert rms(pred[inside], float_pred[inside]) <= 0.1
    # Clipped rows are the ones beyond the training split's range: the largest deviations.
    assert np.max(np.abs(pred - float_pred)[~inside]) > np.max(np.abs(pred - float_pred)[inside])


def test_endpoint_calibration_reaches_beyond_the_training_extremes(split):
    z = split.model.inputs(split.X_train)
    ordered = np.sort(z, axis=0)
    grid = integer.calibrate(split.model, split.X_train, granularity="per_feature", calibration="endpoint")
    low = (integer.INPUT_MIN - grid.zero_point.astype(float)) * grid.step
    high = (integer.INPUT_MAX - grid.zero_point.astype(float)) * grid.step
    # The grid spans [2 x(1) - x(2), 2 x(n) - x(n-1)], shifted by less than a step when its zero
    # point is rounded to a code.
    np.testing.assert_allclose(high - low, (2 * ordered[-1] - ordered[-2]) - (2 * ordered[0] - ordered[1]), rtol=1e-6)
    assert np.all(np.abs(high - (2 * ordered[-1] - ordered[-2])) <= grid.step)
    assert np.all(np.abs(low - (2 * ordered[0] - ordered[1])) <= grid.step)
    assert not integer.saturated(
        integer.build(split.model, grid, split.X_train, weight_scale_search=True, bias_correction=True), split.X_train
    ).any()


def training_rms(split: Split, **changes) -> float:
    """The rms deviation from the float model on the training split, of params.yaml's q8int with ``changes``."""
    tensors = integer.quantize_integer(split.model, split.X_train, options(**changes))
    return rms(integer.predict(tensors, split.X_train), split.model.predict(split.X_train))


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_mse_calibration_beats_min_max_on_the_training_split(split, granularity):
    """The search starts from min/max among its candidates, so it is never worse where it is measured."""
    mse, minmax = (training_rms(split, granularity=granularity, calibration=c) for c in ("mse", "minmax"))
    assert mse <= minmax


def test_per_feature_grids_beat_one_grid_for_all(split):
    assert training_rms(split, granularity="per_feature") < training_rms(split, granularity="per_tensor")


def test_bias_correction_centres_the_training_error(split):
    target = split.model.predict(split.X_train)
    mean_error = {}
    for correction in (True, False):
        tensors = integer.quantize_integer(split.model, split.X_train, options(bias_correction=correction))
        mean_error[correction] = float(np.mean(integer.predict(tensors, split.X_train) - target))
        step = float(tensors["output_scale"][0])
    # Corrected: off by at most half a step of the int32 bias's grid (float32 rescale aside).
    assert abs(mean_error[True]) <= step / 2 * (1 + 1e-6)
    assert abs(mean_error[True]) < abs(mean_error[False])


def test_model_without_a_scaler_is_shifted_by_the_training_means(split):
    """train.standardize false: the same function without a scaler still quantizes, centred on
    the training means (an int8 grid must hold 0), as well as the standardized model does."""
    weight, bias = split.model.folded()
    raw = LinearParams(weight=weight, bias=bias)
    tensors = integer.quantize_integer(raw, split.X_train, COMMITTED)
    np.testing.assert_allclose(tensors["input_mean"], split.X_train.mean(axis=0).astype(np.float32))
    float_pred = raw.predict(split.X_test)
    inside = ~integer.saturated(tensors, split.X_test)
    assert rms(integer.predict(tensors, split.X_test)[inside], float_pred[inside]) <= 0.1
