"""Stage train: fit the linear regression, save it (joblib, and as safe float parameters for the
predictor), and record its fit on the training split."""

from __future__ import annotations

import dataclasses
import io

import numpy as np

from housing_predictor import paths
from housing_predictor.artifacts import save_model, write_atomic, write_json
from housing_predictor.errors import run_guarded
from housing_predictor.linear import LinearParams
from housing_predictor.quantization import float_tensors
from stages.dataset import FEATURES, read_split
from stages.params import TrainParams, load_data_params, train_params


def fit(X: np.ndarray, y: np.ndarray, params: TrainParams):
    """A plain LinearRegression, behind a StandardScaler when ``params.standardize``."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), LinearRegression()) if params.standardize else LinearRegression()
    return estimator.fit(X, y)


def linear_params(estimator) -> LinearParams:
    """The fitted estimator as plain arrays: what the predictor and the quantizers work from."""
    if hasattr(estimator, "steps"):
        scaler, regression = estimator[0], estimator[-1]
        return LinearParams(regression.coef_.copy(), float(regression.intercept_), scaler.mean_.copy(), scaler.scale_.copy())
    return LinearParams(estimator.coef_.copy(), float(estimator.intercept_))


def fit_metrics(y: np.ndarray, predictions: np.ndarray) -> dict:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "r2": float(r2_score(y, predictions)),
        "mse": float(mean_squared_error(y, predictions)),
        "mae": float(mean_absolute_error(y, predictions)),
        "rows": int(len(y)),
    }


def main() -> None:
    import joblib

    params = train_params()
    provenance = {"load_data": dataclasses.asdict(load_data_params()), "train": dataclasses.asdict(params)}
    X, y = read_split(paths.TRAIN_CSV)
    estimator = fit(X, y, params)
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    write_atomic(paths.SKLEARN_MODEL, buffer.getvalue())
    model = linear_params(estimator)
    save_model(
        paths.model_file("float"), float_tensors(model), scheme="float", bits=64, features=list(FEATURES), params=provenance
    )
    # Nested under "train": `dvc metrics show`/`exp show` print train.r2, never to be taken for a test score.
    write_json(paths.TRAIN_METRICS, {"train": fit_metrics(y, estimator.predict(X))})


if __name__ == "__main__":
    run_guarded(main)
