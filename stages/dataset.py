"""The train/test split files: CSV with a header of the feature names and the target.

Numbers are written with ``repr`` (``write_csv``, also used for the plot data and the selfcheck
sample), the shortest text that reads back as the same float64: exact, and readable.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from housing_predictor.errors import PipelineError
from housing_predictor.files import write_atomic
from housing_predictor.linear import FEATURES

__all__ = ["FEATURES", "TARGET", "read_split", "write_csv", "write_split"]
TARGET = "MedHouseVal"


def write_csv(path: Path, header: list[str], columns: list[np.ndarray]) -> None:
    """CSV of ``columns`` (each (n_rows,) or (n_rows, k)) under ``header``, numbers as ``repr``:
    the shortest text that reads back as the same float64; a column of labels (str, no commas)
    is written as it is."""
    parts = [np.asarray(column).reshape(len(column), -1).tolist() for column in columns]
    rows = (
        ",".join(cell if isinstance(cell, str) else repr(cell) for part in row for cell in part)
        for row in zip(*parts, strict=True)
    )
    write_atomic(path, ("\n".join((",".join(header), *rows)) + "\n").encode())


def write_split(path: Path, X: np.ndarray, y: np.ndarray) -> None:
    write_csv(path, [*FEATURES, TARGET], [X, y])


def read_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n_rows, 8) and ``y`` (n_rows,) from a split file, checked column by column."""
    try:
        with open(path) as handle:
            header = handle.readline().rstrip("\n").split(",")
            expected = [*FEATURES, TARGET]
            if header != expected:
                raise PipelineError(f"{path}: header must be {','.join(expected)}, got {','.join(header)}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "no data": reported below, as an error
                table = np.loadtxt(handle, delimiter=",", dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise PipelineError(f"{path} is missing: run `dvc repro load-data`") from None
    except ValueError as error:
        raise PipelineError(f"{path} is malformed: {error}") from None
    if table.shape[1] != len(FEATURES) + 1 or len(table) == 0:
        raise PipelineError(f"{path} must have {len(FEATURES) + 1} columns and at least one row, got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise PipelineError(f"{path} has missing or infinite values")
    return table[:, :-1], table[:, -1]
