"""Quantization of a linear model's parameters: pure numpy, no I/O.

One grid (a scale and a zero point) per weight tensor; integers are stored in the narrowest type
that holds the bit width (int8/uint8 up to 8 bits, int16/uint16 up to 16). Our scheme (affine)
keeps the bias off the weights' grid: it stays float32, after bias correction. The two published
schemes are reproduced exactly, to show how they fail (published_a puts the bias on the weights'
grid, published_b gives it a grid of its own).

A quantized model is a dict of named numpy arrays (the tensors its file stores); ``payload_bytes``
counts every one of them, since inference needs them all. The schemes' options arrive validated
(stages/params.py, at the pipeline's boundary): nothing here checks them again.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

import numpy as np

from housing_predictor.errors import PipelineError
from housing_predictor.linear import LinearParams

MIN_BITS, MAX_BITS = 2, 16  # the widths a code's storage type (int8/uint8, int16/uint16) holds
PUBLISHED_A_SCALE = 0.01  # write-up A's fixed step
PUBLISHED_B_EPSILON = 1e-8  # write-up B's guard against max == min
# scale_search "mse" tries the max-|w| scale times these factors: below 1 clips the largest
# weight to refine the grid for the rest; above 1 only moves the grid. 1.0 is always a candidate,
# so the search is never worse than no search on the training split.
# (A set, not np.unique: that imports numpy.ma, which costs the predictor ~10 ms at every start.)
SCALE_SEARCH_FACTORS = np.array(sorted({*np.linspace(0.5, 1.5, 1001).tolist(), 1.0}))


class Scheme(Protocol):
    """A weight-only scheme's options (stages/params.py's models): the published schemes have none."""

    scheme: Literal["affine", "published_a", "published_b"]


class Affine(Scheme, Protocol):
    symmetric: bool  # zero point fixed at 0 (or mid-range unsigned), or fitted to [min(w, 0), max(w, 0)]
    signed: bool  # int8/int16 codes, or uint8/uint16
    rounding: Literal["nearest", "truncate"]
    scale_search: Literal["none", "mse"]
    bias_correction: bool


def storage_dtype(bits: int, signed: bool) -> np.dtype:
    """The narrowest integer type holding ``bits``-bit codes."""
    width = 8 if bits <= 8 else 16
    return np.dtype(f"{'int' if signed else 'uint'}{width}")


def integer_range(bits: int, signed: bool) -> tuple[int, int]:
    """The codes a ``bits``-bit integer can hold: [-2^(b-1), 2^(b-1)-1] or [0, 2^b-1]."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


class Grid(NamedTuple):
    """The affine grid of one tensor: ``value = (code - zero_point) * scale``."""

    bits: int
    signed: bool
    scale: float  # float32-representable: the file stores it as float32
    zero_point: int

    @property
    def qmin(self) -> int:
        return integer_range(self.bits, self.signed)[0]

    @property
    def qmax(self) -> int:
        return integer_range(self.bits, self.signed)[1]

    @property
    def dtype(self) -> np.dtype:
        return storage_dtype(self.bits, self.signed)


def _float32_scale(scale: float) -> float:
    stored = float(np.float32(scale))
    if not (np.isfinite(stored) and stored > 0):
        raise PipelineError(f"weights need a scale of {scale:g}, outside float32's range")
    return stored


def fit_grid(values: np.ndarray, bits: int, *, symmetric: bool, signed: bool, scale: float | None = None) -> Grid:
    """The grid for ``values`` (1-D): from their range, or around a given ``scale``.

    Symmetric grids put 0 on code ``zero_point`` (0 signed, 2^(b-1) unsigned) and use the codes
    symmetric around it, so ``-max|w|`` and ``max|w|`` are both exact. Asymmetric grids span
    [min(w, 0), max(w, 0)]; 0 stays exactly representable. All-zero tensors get scale 1.
    """
    qmin, qmax = integer_range(bits, signed)
    if symmetric:
        half = 2 ** (bits - 1) - 1
        zero_point = 0 if signed else 2 ** (bits - 1)
        if scale is None:
            largest = float(np.max(np.abs(values), initial=0.0))
            scale = largest / half if largest > 0 else 1.0
        return Grid(bits, signed, _float32_scale(scale), zero_point)
    low = min(float(np.min(values, initial=0.0)), 0.0)
    high = max(float(np.max(values, initial=0.0)), 0.0)
    if scale is None:
        scale = (high - low) / (qmax - qmin) if high > low else 1.0
    scale = _float32_scale(scale)
    zero_point = int(np.clip(qmin - np.rint(low / scale), qmin, qmax))
    return Grid(bits, signed, scale, zero_point)


def quantize(values: np.ndarray, grid: Grid, rounding: str = "nearest") -> np.ndarray:
    """Codes for ``values`` on ``grid``: round (half to even, or toward zero), then clip to the range."""
    return np.clip(rounded(values / grid.scale, rounding) + grid.zero_point, grid.qmin, grid.qmax).astype(grid.dtype)


def rounded(scaled: np.ndarray, rounding: str) -> np.ndarray:
    """``scaled`` rounded half to even ('nearest') or toward zero ('truncate')."""
    return np.trunc(scaled) if rounding == "truncate" else np.rint(scaled)


def dequantize(codes: np.ndarray, grid: Grid) -> np.ndarray:
    """float64 values of ``codes``: ``(code - zero_point) * scale``."""
    return (codes.astype(np.float64) - grid.zero_point) * grid.scale


def input_moments(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (n,) and second moment (n, n) of a model's inputs: all that bias correction and the
    scale search need to know about the training data."""
    return inputs.mean(axis=0), inputs.T @ inputs / len(inputs)


def expected_squared_error(weight_error: np.ndarray, mean: np.ndarray, second_moment: np.ndarray, bias_corrected: bool) -> float:
    """E[(inputs @ weight_error)^2] over the training inputs, less the part bias correction removes."""
    total = float(weight_error @ second_moment @ weight_error)
    if bias_corrected:
        total -= float(weight_error @ mean) ** 2
    return total


def searched_grid(
    weight: np.ndarray,
    grid: Grid,
    symmetric: bool,
    rounding: str,
    mean: np.ndarray,
    second_moment: np.ndarray,
    bias_correction: bool,
) -> Grid:
    """Of the grids at ``grid.scale`` times each of SCALE_SEARCH_FACTORS, the one whose rounding
    error costs least on the training inputs (``expected_squared_error``); the first of equals.

    The same grids, codes and costs as building each candidate with fit_grid, quantize and
    dequantize (elementwise arithmetic gives the same bits whether numpy runs it on one row or on
    all of them), but one array operation for every candidate instead of a round of Python calls
    per candidate: the search was most of quantize-8/16's and the sweep's compute. Each cost is
    still reduced alone, row by row, exactly as expected_squared_error reduces it."""
    qmin, qmax = grid.qmin, grid.qmax
    scales = np.array([_float32_scale(grid.scale * factor) for factor in SCALE_SEARCH_FACTORS])
    if symmetric:
        zero_points = np.full(len(scales), grid.zero_point)
    else:
        low = min(float(np.min(weight, initial=0.0)), 0.0)
        zero_points = np.clip(qmin - np.rint(low / scales), qmin, qmax).astype(int)
    codes = np.clip(rounded(weight / scales[:, None], rounding) + zero_points[:, None], qmin, qmax).astype(grid.dtype)
    errors = weight - (codes.astype(np.float64) - zero_points[:, None]) * scales[:, None]
    costs = [expected_squared_error(np.array(error), mean, second_moment, bias_correction) for error in errors]
    best = costs.index(min(costs))  # the first of equals: deterministic
    return Grid(grid.bits, grid.signed, float(scales[best]), int(zero_points[best]))


def quantize_affine(model: LinearParams, train_X: np.ndarray, bits: int, options: Affine) -> dict[str, np.ndarray]:
    """Our scheme: one grid for the weights, float32 bias with bias correction, float32 scaler.

    ``train_X`` (n_rows, n_features) raw training features: their moments drive bias correction
    and the scale search. Returns the tensors of the quantized model's file.
    """
    tensors: dict[str, np.ndarray] = {}
    if model.standardized:
        # The file keeps the scaler in float32; re-express the float model over exactly that
        # scaler so its rounding costs nothing.
        input_mean = model.input_mean.astype(np.float32)
        input_scale = model.input_scale.astype(np.float32)
        model = model.restandardized(input_mean.astype(np.float64), input_scale.astype(np.float64))
        tensors["input_mean"], tensors["input_scale"] = input_mean, input_scale
    weight = model.weight
    mean, second_moment = input_moments(model.inputs(train_X))

    grid = fit_grid(weight, bits, symmetric=options.symmetric, signed=options.signed)
    if options.scale_search == "mse":
        grid = searched_grid(weight, grid, options.symmetric, options.rounding, mean, second_moment, options.bias_correction)

    codes = quantize(weight, grid, options.rounding)
    bias = model.bias
    if options.bias_correction:
        # E[inputs @ (w - deq(w))] over the training data, moved into the bias.
        bias += float((weight - dequantize(codes, grid)) @ mean)
    tensors["weight_q"] = codes
    tensors["weight_scale"] = np.array([grid.scale], dtype=np.float32)
    tensors["weight_zero_point"] = np.array([grid.zero_point], dtype=grid.dtype)
    if abs(bias) > float(np.finfo(np.float32).max):
        raise PipelineError(f"bias {bias:g} is outside float32's range")
    tensors["bias"] = np.array([bias], dtype=np.float32)
    return tensors


def quantize_published_a(model: LinearParams, bits: int) -> dict[str, np.ndarray]:
    """Write-up A: ``clip(round(w / 0.01), 0, 2^b - 1)`` unsigned, intercept on the same grid.

    Defined for 8 bits; at other widths only the top code changes.
    """
    raw = model.raw()
    dtype = storage_dtype(bits, signed=False)
    top = 2**bits - 1

    def codes(values: np.ndarray) -> np.ndarray:
        return np.clip(np.round(values / PUBLISHED_A_SCALE), 0, top).astype(dtype)

    scale = np.array([PUBLISHED_A_SCALE], dtype=np.float32)
    return {
        "weight_q": codes(raw.weight),
        "weight_scale": scale,
        "bias_q": codes(np.array([raw.bias])),
        "bias_scale": scale.copy(),
    }


def quantize_published_b(model: LinearParams, bits: int) -> dict[str, np.ndarray]:
    """Write-up B: per array ``s = (2^b - 1) / (max - min + 1e-8)``, ``q = trunc((w - min) * s)``."""
    raw = model.raw()
    dtype = storage_dtype(bits, signed=False)
    tensors = {}
    for name, values in (("weight", raw.weight), ("bias", np.array([raw.bias]))):
        low = values.min()
        multiplier = (2**bits - 1) / (values.max() - low + PUBLISHED_B_EPSILON)
        tensors[f"{name}_q"] = ((values - low) * multiplier).astype(dtype)  # the cast truncates
        tensors[f"{name}_multiplier"] = np.array([multiplier], dtype=np.float64)
        tensors[f"{name}_min"] = np.array([low], dtype=np.float64)
    return tensors


def quantize_model(model: LinearParams, train_X: np.ndarray, bits: int, scheme: Scheme) -> dict[str, np.ndarray]:
    """The quantized tensors of ``model`` at ``bits`` under ``scheme`` (its options: ``Affine``)."""
    if scheme.scheme == "affine":
        return quantize_affine(model, train_X, bits, scheme)
    if scheme.scheme == "published_a":
        return quantize_published_a(model, bits)
    return quantize_published_b(model, bits)


def _published_a_values(tensors: dict[str, np.ndarray], name: str) -> np.ndarray:
    return (tensors[f"{name}_q"].astype(np.float32) * tensors[f"{name}_scale"][0]).astype(np.float64)


def _published_b_values(tensors: dict[str, np.ndarray], name: str) -> np.ndarray:
    return tensors[f"{name}_q"].astype(np.float32) / tensors[f"{name}_multiplier"][0] + tensors[f"{name}_min"][0]


def dequantize_model(tensors: dict[str, np.ndarray], scheme: str) -> LinearParams:
    """The float64 model that quantized ``tensors`` stand for (dequantize, then predict as float)."""
    if scheme in ("float", "affine"):
        if "input_mean" in tensors:
            input_mean = tensors["input_mean"].astype(np.float64)
            input_scale = tensors["input_scale"].astype(np.float64)
        else:
            input_mean = input_scale = None
        if scheme == "float":
            weight = tensors["weight"].astype(np.float64)
        else:
            grid_scale = float(tensors["weight_scale"][0])
            weight = (tensors["weight_q"].astype(np.float64) - float(tensors["weight_zero_point"][0])) * grid_scale
        return LinearParams(weight=weight, bias=float(tensors["bias"][0]), input_mean=input_mean, input_scale=input_scale)
    if scheme == "published_a":
        return LinearParams(weight=_published_a_values(tensors, "weight"), bias=float(_published_a_values(tensors, "bias")[0]))
    return LinearParams(weight=_published_b_values(tensors, "weight"), bias=float(_published_b_values(tensors, "bias")[0]))


def float_tensors(model: LinearParams) -> dict[str, np.ndarray]:
    """The float model's tensors, float64, in the same layout the quantized files use."""
    tensors = {}
    if model.standardized:
        tensors["input_mean"] = model.input_mean.astype(np.float64)
        tensors["input_scale"] = model.input_scale.astype(np.float64)
    tensors["weight"] = model.weight.astype(np.float64)
    tensors["bias"] = np.array([model.bias], dtype=np.float64)
    return tensors


def payload_bytes(tensors: dict[str, np.ndarray]) -> int:
    """Bytes of every number the model needs at inference: weights, bias, scales, zero points, scaler."""
    return int(sum(array.nbytes for array in tensors.values()))


def reference_weights(model: LinearParams, scheme: str) -> LinearParams:
    """The float model in the space ``scheme`` quantizes it in: what each code should stand for."""
    if scheme == "affine":
        if model.standardized:
            return model.restandardized(
                model.input_mean.astype(np.float32).astype(np.float64), model.input_scale.astype(np.float32).astype(np.float64)
            )
        return model
    return model.raw()
