"""Stage load-data: fetch California Housing as scikit-learn does, check it, split it.

The raw data is never edited: the split files are the only thing this stage writes.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from housing_predictor import paths
from housing_predictor.errors import PipelineError, run_guarded
from stages import params
from stages.dataset import FEATURES, TARGET, write_split

CACHE_FILE = "cal_housing_py3.pkz"
EXPECTED_ROWS = 20_640  # the data set as published (sklearn's fetch_california_housing documents it)
# The smallest side of the split we accept: fewer rows leave a test split on which R² is noise (or
# undefined: one row gives NaN), or a training split with almost no data.
MIN_SPLIT_ROWS = 100


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


def test_rows(load_data: params.LoadData, rows: int = EXPECTED_ROWS) -> int:
    """The test side of a split of ``rows`` rows: ceil(test_size * rows), as scikit-learn counts
    it; a PipelineError unless each side keeps MIN_SPLIT_ROWS. Stage validate checks it before
    any stage runs, on the data set's published size."""
    n_test = math.ceil(load_data.test_size * rows)
    if not MIN_SPLIT_ROWS <= n_test <= rows - MIN_SPLIT_ROWS:
        low, high = MIN_SPLIT_ROWS / rows, 1 - MIN_SPLIT_ROWS / rows
        raise PipelineError(
            f"params.yaml: load_data.test_size must leave at least {MIN_SPLIT_ROWS} of the {rows:,} rows on each side of "
            f"the split ({low:.6f} to {high:.6f}), got {load_data.test_size!r} ({n_test} test and {rows - n_test} training rows)"
        )
    return n_test


def split(X: np.ndarray, y: np.ndarray, load_data: params.LoadData):
    """scikit-learn's shuffled train/test split: (X_train, X_test, y_train, y_test), each side
    at least MIN_SPLIT_ROWS (``test_rows``)."""
    from sklearn.model_selection import train_test_split

    test_rows(load_data, len(X))
    return train_test_split(X, y, test_size=load_data.test_size, random_state=load_data.random_state)


def main() -> None:
    load_data = params.load().load_data
    X, y, feature_names = fetch()
    validate(X, y, feature_names)
    X_train, X_test, y_train, y_test = split(X, y, load_data)
    write_split(paths.TRAIN_CSV, X_train, y_train)
    write_split(paths.TEST_CSV, X_test, y_test)


if __name__ == "__main__":
    run_guarded(main)
