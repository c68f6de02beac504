"""Stage train: fit the linear regression, save it (joblib, and as safe float parameters for the
predictor), and record its fit on the training split."""

from __future__ import annotations

import io

import numpy as np

from housing_predictor import paths
from housing_predictor.errors import run_guarded
from housing_predictor.files import write_atomic, write_json
from housing_predictor.linear import FEATURES, LinearParams
from housing_predictor.modelfile import FLOAT_BITS, save_model
from housing_predictor.quantization import float_tensors
from stages import params
from stages.dataset import read_split


def fit(X: np.ndarray, y: np.ndarray, train: params.Train):
    """A plain LinearRegression, behind a StandardScaler when ``train.standardize``."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), LinearRegression()) if train.standardize else LinearRegression()
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

    loaded = params.load()
    train = loaded.train
    provenance = {"load_data": loaded.load_data.model_dump(), "train": train.model_dump()}
    X, y = read_split(paths.TRAIN_CSV)
    estimator = fit(X, y, train)
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    write_atomic(paths.SKLEARN_MODEL, buffer.getvalue())
    model = linear_params(estimator)
    save_model(
        paths.model_file("float"),
        float_tensors(model),
        scheme="float",
        bits=FLOAT_BITS,
        features=list(FEATURES),
        params=provenance,
    )
    # The keys of the test split's files (metrics/<model>.json): `dvc metrics show` prints it in their
    # columns, on its own row (metrics/train.json), so it adds one column, rows, and keeps within 180.
    write_json(paths.TRAIN_METRICS, fit_metrics(y, estimator.predict(X)))


if __name__ == "__main__":
    run_guarded(main)
