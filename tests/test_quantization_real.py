"""The quantization schemes on the real California Housing data and the published split (the
one the write-ups use, whose figures these are): our scheme meets TARGETS on the test split
against the float model's predictions; the published schemes reproduce the write-ups' figures
(conftest.PUBLISHED_FIGURES) to 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from housing_predictor.linear import LinearParams
from housing_predictor.quantization import dequantize_model, quantize_model
from stages.params import PublishedA, PublishedB, Train
from stages.train import fit, linear_params

from conftest import PUBLISHED_FIGURES, affine, housing_split

TARGETS = {8: {"r2_drop": 1e-3, "rms_deviation": 1e-2}, 16: {"r2_drop": 1e-5, "rms_deviation": 1e-4}}
PUBLISHED_SCHEMES = {"published_a": PublishedA(scheme="published_a"), "published_b": PublishedB(scheme="published_b")}


@dataclass(frozen=True)
class Housing:
    X: np.ndarray
    y: np.ndarray
    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    standardized: LinearParams  # the pipeline's model: StandardScaler + LinearRegression
    plain: LinearParams  # train.standardize false: sklearn's LinearRegression, as the write-ups fit it


@pytest.fixture(scope="module")
def housing() -> Housing:
    X_train, X_test, y_train, y_test = housing_split()
    models = {flag: linear_params(fit(X_train, y_train, Train(standardize=flag))) for flag in (True, False)}
    X, y = np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test])
    return Housing(X, y, X_train, X_test, y_test, standardized=models[True], plain=models[False])


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y_true, y_pred))


def affine_deviation(housing: Housing, model: LinearParams, bits: int, **options) -> dict[str, float]:
    """R² drop and rms deviation from the float model on the test split, as stage evaluate reports them."""
    from sklearn.metrics import root_mean_squared_error

    tensors = quantize_model(model, housing.X_train, bits, affine(**options))
    float_pred = model.predict(housing.X_test)
    quantized_pred = dequantize_model(tensors, "affine").predict(housing.X_test)
    return {
        "r2_drop": r2(housing.y_test, float_pred) - r2(housing.y_test, quantized_pred),
        "rms_deviation": float(root_mean_squared_error(float_pred, quantized_pred)),
    }


def misses(measured: dict[str, float], bits: int) -> list[str]:
    target = TARGETS[bits]
    return [f"{key} {measured[key]:.3g} (target {target[key]:g})" for key in target if abs(measured[key]) > target[key]]


def published(model: LinearParams, housing: Housing, scheme: str, bits: int) -> tuple[dict[str, np.ndarray], LinearParams]:
    tensors = quantize_model(model, housing.X_train, bits, PUBLISHED_SCHEMES[scheme])
    return tensors, dequantize_model(tensors, scheme)


def test_the_float_model_reproduces_the_published_baseline(housing):
    assert r2(housing.y_test, housing.standardized.predict(housing.X_test)) == pytest.approx(
        PUBLISHED_FIGURES["float_r2"], abs=1e-6
    )


@pytest.mark.parametrize("scale_search", ["mse", "none"])
@pytest.mark.parametrize("bits", [8, 16])
def test_affine_defaults_meet_the_targets(housing, bits, scale_search):
    measured = affine_deviation(housing, housing.standardized, bits, scale_search=scale_search)
    assert not misses(measured, bits), f"{bits}-bit, scale_search {scale_search}: {measured}"


def test_unstandardized_model_misses_the_8_bit_target(housing):
    """Why train standardizes: the raw weights span 2e-6 (Population) to 0.78, so one int8 scale
    rounds the small ones to nothing; Population's weight times its values (std ~1100) alone costs
    more than the target."""
    measured = affine_deviation(housing, housing.plain, 8)
    assert misses(measured, 8), f"the raw 8-bit model unexpectedly meets the target: {measured}"


@pytest.mark.parametrize("bits", [8, 16])
def test_mse_scale_search_improves_the_pipelines_model(housing, bits):
    """The search is not a no-op (test_quantization.py proves it never worse, on any model): on
    the training split it finds a clearly better scale than max|w|."""
    float_pred = housing.standardized.predict(housing.X_train)
    mse = {}
    for search in ("none", "mse"):
        tensors = quantize_model(housing.standardized, housing.X_train, bits, affine(scale_search=search))
        mse[search] = float(np.mean((dequantize_model(tensors, "affine").predict(housing.X_train) - float_pred) ** 2))
    assert mse["mse"] < 0.9 * mse["none"], mse


def test_published_a_reproduces_the_write_up(housing):
    expected = PUBLISHED_FIGURES["published_a"][8]
    _, model = published(housing.standardized, housing, "published_a", 8)
    assert r2(housing.y_test, model.predict(housing.X_test)) == pytest.approx(expected["r2"], abs=1e-6)
    assert r2(housing.y, model.predict(housing.X)) == pytest.approx(expected["r2_all_rows"], abs=1e-6)


@pytest.mark.parametrize("bits", [8, 16])
def test_published_b_reproduces_the_write_up(housing, bits):
    expected = PUBLISHED_FIGURES["published_b"][bits]
    tensors, model = published(housing.standardized, housing, "published_b", bits)
    np.testing.assert_array_equal(tensors["weight_q"], expected["codes"])
    assert tensors["weight_q"].dtype == (np.uint8 if bits == 8 else np.uint16)
    assert r2(housing.y_test, model.predict(housing.X_test)) == pytest.approx(expected["r2"], abs=1e-6)


@pytest.mark.parametrize("scheme, bits", [("published_a", 8), ("published_b", 8), ("published_b", 16)])
def test_published_schemes_fold_the_scaler_back(housing, scheme, bits):
    """From the standardized pipeline the schemes quantize the folded raw weights: the same codes
    and, to float64 rounding, the same predictions as from the plain LinearRegression the
    write-ups quantized."""
    plain_tensors, plain_model = published(housing.plain, housing, scheme, bits)
    pipeline_tensors, pipeline_model = published(housing.standardized, housing, scheme, bits)
    np.testing.assert_array_equal(pipeline_tensors["weight_q"], plain_tensors["weight_q"])
    np.testing.assert_array_equal(pipeline_tensors["bias_q"], plain_tensors["bias_q"])
    np.testing.assert_allclose(pipeline_model.predict(housing.X), plain_model.predict(housing.X), rtol=0, atol=1e-9)
