"""Unit and property-based tests of the pure quantization core (housing_predictor/quantization.py).

The properties hold for every bit width from 2 to 16, symmetric and asymmetric grids, signed and
unsigned storage, and both roundings. Weights are drawn with |w| <= 1e6 and either 0 or
|w| >= 1e-12: the grid's scale (max|w| / (2^(b-1) - 1), or the range over 2^b - 1) is stored as
float32, so a scale outside float32's normal range would underflow or overflow (the core rejects
that; see ``test_fit_grid_rejects_weights_whose_scale_float32_cannot_hold``) or keep only a few bits
of precision as a subnormal. Inside these bounds every scale is a normal float32, and
code * scale (at most 17 bits times 24) is exact in float64, which the grid-point tests rely on.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from housing_predictor.errors import PipelineError
from housing_predictor.linear import LinearParams
from housing_predictor.quantization import (
    MAX_BITS,
    MIN_BITS,
    SCALE_SEARCH_FACTORS,
    Grid,
    dequantize,
    dequantize_model,
    expected_squared_error,
    fit_grid,
    integer_range,
    payload_bytes,
    quantize,
    quantize_affine,
    quantize_published_a,
    searched_grid,
    storage_dtype,
)

from conftest import affine

ALL_BITS = range(MIN_BITS, MAX_BITS + 1)
FLOAT32_EPS = 2.0**-24  # relative error of rounding a float64 to the nearest float32
# ... of a float64 result (itself rounded, 2^-53) rounded to float32: what a fitted scale carries
FLOAT32_RTOL = FLOAT32_EPS * (1 + 1e-6)
SLACK = 1e-9  # relative slack for float64 rounding in values / scale

# Cheap properties get hypothesis' default example count; the affine ones run a scale search over
# every SCALE_SEARCH_FACTORS candidate per example, so fewer. The whole file stays well under 20 s.
PROPERTY = settings(deadline=None, max_examples=100)
AFFINE_PROPERTY = settings(deadline=None, max_examples=40)

bit_widths = st.integers(MIN_BITS, MAX_BITS)
roundings = st.sampled_from(["nearest", "truncate"])
# See the module docstring for the bounds; values below 1e-12 in magnitude become exact zeros.
weight_values = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False).map(
    lambda x: 0.0 if abs(x) < 1e-12 else x
)
weight_arrays = hnp.arrays(np.float64, st.integers(1, 12), elements=weight_values)


@st.composite
def grids(draw) -> Grid:
    """A grid fitted to random weights, sometimes around an explicit scale (as the scale search
    does: the fitted scale times a factor in [0.5, 1.5])."""
    weights = draw(weight_arrays)
    bits, symmetric, signed = draw(bit_widths), draw(st.booleans()), draw(st.booleans())
    grid = fit_grid(weights, bits, symmetric=symmetric, signed=signed)
    if draw(st.booleans()):
        factor = draw(st.floats(0.5, 1.5))
        grid = fit_grid(weights, bits, symmetric=symmetric, signed=signed, scale=grid.scale * factor)
    return grid


def grid_range(grid: Grid) -> tuple[float, float]:
    """The smallest and largest value the grid represents."""
    return (grid.qmin - grid.zero_point) * grid.scale, (grid.qmax - grid.zero_point) * grid.scale


# --- bit widths and storage ---------------------------------------------------------------------


@pytest.mark.parametrize("bits", ALL_BITS)
@pytest.mark.parametrize("signed", [True, False])
def test_storage_dtype_is_narrowest_integer_holding_the_range(bits, signed):
    """2^b codes, all held by the storage type, which is one byte up to 8 bits and two above."""
    dtype = storage_dtype(bits, signed)
    low, high = integer_range(bits, signed)
    assert high - low + 1 == 2**bits and (low < 0) == signed
    assert np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max
    assert dtype.itemsize == (1 if bits <= 8 else 2) and dtype.kind == ("i" if signed else "u")


# --- unrepresentable weights -----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("weights", [[1e300], [1e-300], [-1e-300, 1e-301]])
@pytest.mark.parametrize("symmetric", [True, False])
def test_fit_grid_rejects_weights_whose_scale_float32_cannot_hold(weights, symmetric):
    with pytest.raises(PipelineError, match="outside float32's range"):
        fit_grid(np.array(weights), 8, symmetric=symmetric, signed=True)


# --- properties of the grid ---------------------------------------------------------------------


@PROPERTY
@given(weights=weight_arrays, bits=bit_widths, symmetric=st.booleans(), signed=st.booleans())
def test_a_fitted_grid_holds_its_weights(weights, bits, symmetric, signed):
    """A float32 scale, a zero point among the codes, and the weights back within half a step: an
    asymmetric grid's zero point is rounded to a code, which can push one end of [min, max] up to
    half a step outside the range, and clipping then costs at most half a step, plus the float32
    rounding of the scale over the (2^b - 1)-step span. A symmetric grid puts ±max|w| on the end
    codes of its range, back exactly up to the float32 rounding of the scale (relative 2^-24)."""
    grid = fit_grid(weights, bits, symmetric=symmetric, signed=signed)
    assert grid.scale > 0 and float(np.float32(grid.scale)) == grid.scale
    assert grid.qmin <= grid.zero_point <= grid.qmax
    error = np.abs(dequantize(quantize(weights, grid), grid) - weights)
    bound = grid.scale * (0.5 + (grid.qmax - grid.qmin) * FLOAT32_EPS) * (1 + SLACK)
    assert np.all(error <= bound), f"max error {error.max() / grid.scale} steps"
    if symmetric:
        assert grid.zero_point == (0 if signed else 2 ** (bits - 1))
        largest = float(np.max(np.abs(weights)))
        ends = np.array([-largest, largest])
        codes = quantize(ends, grid)
        half = 2 ** (bits - 1) - 1 if largest else 0
        np.testing.assert_array_equal(codes.astype(int) - grid.zero_point, [-half, half])
        np.testing.assert_allclose(dequantize(codes, grid), ends, rtol=FLOAT32_RTOL, atol=0)


@PROPERTY
@given(grid=grids(), fractions=hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(0.0, 1.0)))
def test_values_in_range_round_within_half_a_step_and_truncate_toward_zero(grid, fractions):
    low, high = grid_range(grid)
    values = np.clip(low + fractions * (high - low), low, high)
    error = np.abs(dequantize(quantize(values, grid), grid) - values)
    assert np.all(error <= 0.5 * grid.scale * (1 + SLACK)), f"max error {error.max() / grid.scale} steps"
    truncated = dequantize(quantize(values, grid, "truncate"), grid)
    assert np.all(np.abs(truncated) <= np.abs(values)), "truncation moved a value away from zero"
    assert np.all((truncated == 0) | (np.sign(truncated) == np.sign(values)))
    assert np.all(np.abs(values - truncated) < grid.scale * (1 + SLACK))


@PROPERTY
@given(grid=grids(), distances=hnp.arrays(np.float64, st.integers(1, 10), elements=st.floats(0.0, 1e6)))
def test_values_outside_the_range_clip_to_the_end_codes_of_the_storage_type(grid, distances):
    low, high = grid_range(grid)
    for rounding in ("nearest", "truncate"):
        # More than one step beyond either end: no rounding can bring them back inside.
        above = quantize(high + grid.scale + distances, grid, rounding)
        below = quantize(low - grid.scale - distances, grid, rounding)
        assert above.dtype == below.dtype == storage_dtype(grid.bits, grid.signed)
        assert np.all(above == grid.qmax) and np.all(below == grid.qmin)


@PROPERTY
@given(grid=grids(), data=st.data())
def test_grid_points_are_exact(grid, data):
    """codes -> dequantize -> quantize gives back the codes, and a grid point's value survives
    quantize -> dequantize bit for bit, under either rounding."""
    codes = np.array(data.draw(st.lists(st.integers(grid.qmin, grid.qmax), min_size=1, max_size=20)), dtype=grid.dtype)
    codes = np.concatenate([codes, np.array([grid.qmin, grid.qmax, grid.zero_point], dtype=grid.dtype)])
    values = dequantize(codes, grid)
    for rounding in ("nearest", "truncate"):
        np.testing.assert_array_equal(quantize(values, grid, rounding), codes)
        np.testing.assert_array_equal(dequantize(quantize(values, grid, rounding), grid), values)


@PROPERTY
@given(grid=grids(), values=hnp.arrays(np.float64, st.integers(2, 20), elements=st.floats(-1e6, 1e6, allow_subnormal=False)))
def test_quantize_is_monotone(grid, values):
    values = np.sort(values)
    for rounding in ("nearest", "truncate"):
        codes = quantize(values, grid, rounding).astype(np.int64)
        assert np.all(np.diff(codes) >= 0), f"{rounding}: {values} -> {codes}"


@PROPERTY
@given(value=weight_values, size=st.integers(1, 12), bits=bit_widths, symmetric=st.booleans(), signed=st.booleans())
@example(value=0.0, size=3, bits=8, symmetric=False, signed=False)
def test_constant_weights_come_back_to_the_float32_scale(value, size, bits, symmetric, signed):
    """A constant lands on an end of its own range: it comes back up to the float32 rounding of
    the scale; all zeros (scale 1, documented) exactly, under either rounding."""
    weights = np.full(size, value)
    grid = fit_grid(weights, bits, symmetric=symmetric, signed=signed)
    np.testing.assert_allclose(dequantize(quantize(weights, grid), grid), weights, rtol=FLOAT32_RTOL, atol=0)
    if value == 0:
        assert grid.scale == 1.0 and not dequantize(quantize(weights, grid, "truncate"), grid).any()


# --- quantize_affine: bias correction, scale search, payload ------------------------------------


def random_problem(seed: int, standardized: bool, n_features: int = 5, n_rows: int = 200) -> tuple[LinearParams, np.ndarray]:
    """A random model (raw, or restandardized) over features with large means, up to 1e4, and its inputs."""
    rng = np.random.default_rng(seed)
    means = rng.choice([-1, 1], n_features) * 10 ** rng.uniform(0, 4, n_features)
    X = means + rng.normal(size=(n_rows, n_features)) * np.abs(means) * rng.uniform(0.05, 0.5, n_features)
    weight = rng.choice([-1, 1], n_features) * 10 ** rng.uniform(-4, 0, n_features)
    raw = LinearParams(weight, float(rng.normal(scale=10)))
    return (raw.restandardized(X.mean(axis=0), X.std(axis=0)) if standardized else raw), X


problems = st.builds(random_problem, seed=st.integers(0, 2**32 - 1), standardized=st.booleans())
GRID_OPTIONS = {"symmetric": st.booleans(), "signed": st.booleans(), "rounding": roundings}


def float32_bias_error(*tensors: dict) -> float:
    """The largest rounding error of a float32-stored bias among ``tensors``: |b| * 2^-24."""
    return max(abs(float(t["bias"][0])) for t in tensors) * FLOAT32_EPS


@AFFINE_PROPERTY
@given(
    problem=problems,
    bits=bit_widths,
    options=st.fixed_dictionaries(GRID_OPTIONS | {"scale_search": st.sampled_from(["none", "mse"])}),
)
def test_bias_correction_makes_the_mean_error_on_training_inputs_zero(problem, bits, options):
    model, X = problem
    tensors = quantize_affine(model, X, bits, affine(bias_correction=True, **options))
    float_pred = model.predict(X)
    mean_error = float(np.mean(dequantize_model(tensors, "affine").predict(X) - float_pred))
    # float32 bias rounding, plus float64 noise on predictions of this magnitude
    tolerance = 2 * float32_bias_error(tensors) + 1e-11 * float(np.max(np.abs(float_pred)))
    assert abs(mean_error) <= tolerance


@AFFINE_PROPERTY
@given(problem=problems, bits=bit_widths, options=st.fixed_dictionaries(GRID_OPTIONS | {"bias_correction": st.booleans()}))
def test_mse_scale_search_is_never_worse_than_none_on_training_inputs(problem, bits, options):
    """The search minimises the exact expected squared error of the weights (and keeps the
    max-|w| scale among its candidates); the measured error adds only the float32 rounding of
    the stored bias, delta, which can move it by at most 2 delta rms + delta^2 either way."""
    model, X = problem
    float_pred = model.predict(X)
    found = {}
    for search in ("none", "mse"):
        tensors = quantize_affine(model, X, bits, affine(scale_search=search, **options))
        found[search] = (float(np.mean((dequantize_model(tensors, "affine").predict(X) - float_pred) ** 2)), tensors)
    (mse_none, none_tensors), (mse_search, search_tensors) = found["none"], found["mse"]
    # float32 bias rounding, plus float64 noise on predictions of this magnitude
    delta = float32_bias_error(none_tensors, search_tensors) + 1e-14 * float(np.max(np.abs(float_pred)))
    tolerance = 4 * delta * np.sqrt(mse_none) + delta**2 + 1e-9 * mse_none
    assert mse_search <= mse_none + tolerance, (mse_search, mse_none)


@pytest.mark.parametrize("bits", ALL_BITS)
@pytest.mark.parametrize("standardized", [True, False])
def test_payload_bytes_counts_every_tensor(bits, standardized):
    model, X = random_problem(seed=1, standardized=standardized, n_features=8)
    tensors = quantize_affine(model, X, bits, affine(scale_search="none"))
    code_bytes = 1 if bits <= 8 else 2
    expected = {
        "weight_q": 8 * code_bytes,  # one code per weight
        "weight_scale": 4,  # float32
        "weight_zero_point": code_bytes,  # in the codes' type
        "bias": 4,  # float32
    }
    if standardized:
        expected |= {"input_mean": 8 * 4, "input_scale": 8 * 4}  # the scaler, float32
    assert {name: array.nbytes for name, array in tensors.items()} == expected
    assert payload_bytes(tensors) == sum(expected.values())


# --- the published schemes' arithmetic (their real-data figures and codes: test_quantization_real.py)


def test_published_a_clips_negatives_to_zero_rounds_half_to_even_and_saturates_at_255():
    # 0.005, 0.015, 0.025 are 0.5, 1.5, 2.5 steps exactly in float64: numpy's round goes to even
    model = LinearParams(np.array([-0.5, 0.004, 0.005, 0.015, 0.025, 1.234, 2.55, 3.0]), -37.0)
    tensors = quantize_published_a(model, 8)
    expected = [0, 0, 0, 2, 2, 123, 255, 255]
    np.testing.assert_array_equal(tensors["weight_q"], expected)
    assert tensors["weight_q"].dtype == np.uint8
    assert tensors["bias_q"][0] == 0  # the intercept -37 is negative: lost
    restored = dequantize_model(tensors, "published_a")
    # dequantized in float32: code (float32) times 0.01 (float32)
    np.testing.assert_array_equal(restored.weight, (np.array(expected, np.float32) * np.float32(0.01)).astype(np.float64))
    assert restored.bias == 0.0


@settings(max_examples=60, deadline=None)
@given(
    weights=weight_arrays,
    bits=bit_widths,
    symmetric=st.booleans(),
    signed=st.booleans(),
    rounding=roundings,
    bias_correction=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_vectorized_scale_search_picks_what_one_candidate_at_a_time_picks(
    weights, bits, symmetric, signed, rounding, bias_correction, seed
):
    """searched_grid evaluates all candidates at once; it must choose exactly the grid that building
    and costing each candidate alone (fit_grid, quantize, dequantize) chooses, first of equals."""
    inputs = np.random.default_rng(seed).normal(size=(64, len(weights)))
    mean, second_moment = inputs.mean(axis=0), inputs.T @ inputs / len(inputs)
    grid = fit_grid(weights, bits, symmetric=symmetric, signed=signed)

    def cost(candidate: Grid) -> float:
        error = weights - dequantize(quantize(weights, candidate, rounding), candidate)
        return expected_squared_error(error, mean, second_moment, bias_correction)

    candidates = [fit_grid(weights, bits, symmetric=symmetric, signed=signed, scale=grid.scale * f) for f in SCALE_SEARCH_FACTORS]
    assert searched_grid(weights, grid, symmetric, rounding, mean, second_moment, bias_correction) == min(candidates, key=cost)
