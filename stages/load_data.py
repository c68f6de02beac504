"""Stage load-data: fetch California Housing as scikit-learn does, check it, split it.

The raw data is never edited: the split files are the only thing this stage writes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from housing_predictor import paths
from housing_predictor.errors import PipelineError, run_guarded
from stages.dataset import FEATURES, TARGET, write_split
from stages.params import DATASET_ROWS as EXPECTED_ROWS
from stages.params import LoadDataParams, load_data_params

CACHE_FILE = "cal_housing_py3.pkz"


def fetch(n_retries: int = 3, delay: float = 1.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, target and feature names from scikit-learn's cache (its folder honours
    ``SCIKIT_LEARN_DATA``), downloading them if the cache is empty and the network allows, with
    scikit-learn's retries (``n_retries`` more tries, ``delay`` seconds apart)."""
    from sklearn.datasets import fetch_california_housing, get_data_home

    cache = Path(get_data_home()) / CACHE_FILE
    try:
        with warnings.catch_warnings():
            # scikit-learn warns before each retry; a failure ends in the one message below.
            warnings.filterwarnings("ignore", message="Retry downloading")
            bunch = fetch_california_housing(n_retries=n_retries, delay=delay)
    except Exception as error:
        if cache.exists():  # whatever unpickling a damaged file raises
            raise PipelineError(
                f"the cached California Housing file {cache} is corrupted ({type(error).__name__}: {error}); "
                "delete it to download it again, or replace it with a good copy"
            ) from None
        if isinstance(error, OSError):  # no cache and no network (URLError is an OSError)
            raise PipelineError(
                f"California Housing is not cached and could not be downloaded ({error}); put scikit-learn's "
                f"cache file {CACHE_FILE} in {cache.parent} or set SCIKIT_LEARN_DATA to the folder holding it"
            ) from None
        raise
    return bunch.data, bunch.target, list(bunch.feature_names)


def validate(X: np.ndarray, y: np.ndarray, feature_names: list[str]) -> None:
    """The data must be the 20,640 rows of the 8 named features, complete and finite."""
    if list(feature_names) != list(FEATURES):
        raise PipelineError(f"California Housing features must be {', '.join(FEATURES)}; got {', '.join(feature_names)}")
    if X.shape != (EXPECTED_ROWS, len(FEATURES)) or y.shape != (EXPECTED_ROWS,):
        raise PipelineError(
            f"California Housing must have {EXPECTED_ROWS} rows of {len(FEATURES)} features; got {X.shape} and {TARGET} {y.shape}"
        )
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise PipelineError("California Housing has missing or infinite values")


def split(X: np.ndarray, y: np.ndarray, params: LoadDataParams):
    """scikit-learn's shuffled train/test split: (X_train, X_test, y_train, y_test)."""
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=params.test_size, random_state=params.random_state)


def main() -> None:
    params = load_data_params()
    X, y, feature_names = fetch()
    validate(X, y, feature_names)
    X_train, X_test, y_train, y_test = split(X, y, params)
    write_split(paths.TRAIN_CSV, X_train, y_train)
    write_split(paths.TEST_CSV, X_test, y_test)


if __name__ == "__main__":
    run_guarded(main)
