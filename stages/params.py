"""The one place that loads and validates params.yaml.

Each stage reads only its own section, and dvc.yaml tracks that whole section: any change to it, a
misspelt key included, re-runs the stage and so meets the checks here, which name the key, what it
got and what is allowed. The file is read as DVC reads it (ruamel.yaml, YAML 1.2), so the values we
check are the values dvc.lock records: `yes` is the string 'yes' to both, not a boolean.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from housing_predictor.errors import PipelineError
from housing_predictor.integer import CALIBRATIONS, GRANULARITIES
from housing_predictor.paths import PARAMS
from housing_predictor.quantization import MAX_BITS, MIN_BITS, ROUNDINGS, SCALE_SEARCHES, SCHEMES  # the core's choices


@dataclass(frozen=True)
class LoadDataParams:
    test_size: float
    random_state: int


@dataclass(frozen=True)
class TrainParams:
    standardize: bool


@dataclass(frozen=True)
class QuantizeParams:
    scheme: str
    symmetric: bool
    signed: bool
    rounding: str
    scale_search: str
    bias_correction: bool


@dataclass(frozen=True)
class IntegerQuantizeParams:
    granularity: str
    calibration: str
    weight_scale_search: bool
    bias_correction: bool


@dataclass(frozen=True)
class EvaluateParams:
    selfcheck_rows: int


@dataclass(frozen=True)
class SweepParams:
    min_bits: int
    max_bits: int
    schemes: dict[str, QuantizeParams]  # name (a metrics key and plot label): how to quantize


# The data set's size and the smallest split side we accept: fewer rows leave a test split on
# which R² is noise (or undefined: one row gives NaN), or a training split with almost no data.
DATASET_ROWS = 20_640
MIN_SPLIT_ROWS = 100


def n_test_rows(test_size: float, n_rows: int = DATASET_ROWS) -> int:
    """Rows in the test split, as scikit-learn's train_test_split counts them: ceil(test_size * n)."""
    return math.ceil(test_size * n_rows)


def _split_fraction(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise PipelineError(f"params.yaml: {key} must be a number strictly between 0 and 1, got {value!r}")
    n_test = n_test_rows(value)
    if not MIN_SPLIT_ROWS <= n_test <= DATASET_ROWS - MIN_SPLIT_ROWS:
        low, high = MIN_SPLIT_ROWS / DATASET_ROWS, 1 - MIN_SPLIT_ROWS / DATASET_ROWS
        raise PipelineError(
            f"params.yaml: {key} must be a fraction that leaves at least {MIN_SPLIT_ROWS} of the {DATASET_ROWS:,} rows on each side of the split "
            f"({low:.6f} to {high:.6f}), got {value!r} ({n_test} test and {DATASET_ROWS - n_test} training rows)"
        )
    return float(value)


def _seed(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**32 - 1:
        raise PipelineError(f"params.yaml: {key} must be an integer from 0 to 4294967295, got {value!r}")
    return value


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4128:
        raise PipelineError(f"params.yaml: {key} must be an integer from 1 to 4128, got {value!r}")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PipelineError(f"params.yaml: {key} must be true or false, got {value!r}")
    return value


def _choice(allowed: tuple[str, ...]):
    def check(key: str, value: Any) -> str:
        if value not in allowed:
            raise PipelineError(f"params.yaml: {key} must be one of {', '.join(allowed)}; got {value!r}")
        return value

    return check


def _bit_width(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_BITS <= value <= MAX_BITS:
        raise PipelineError(f"params.yaml: {key} must be an integer from {MIN_BITS} to {MAX_BITS}, got {value!r}")
    return value


# Scheme names become metrics keys (`affine.8.r2_drop_ppm`) and plot labels: keep them plain.
_SCHEME_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _scheme_names(key: str, value: Any) -> dict:
    """The mapping of named schemes; each entry's own keys are checked as a quantize section."""
    if not isinstance(value, dict) or not value:
        raise PipelineError(f"params.yaml: {key} must be a non-empty mapping of scheme names to quantize settings, got {value!r}")
    for name in value:
        if not isinstance(name, str) or not _SCHEME_NAME.fullmatch(name):
            raise PipelineError(
                f"params.yaml: {key} has a bad scheme name {name!r} (lowercase letters, digits and _, starting with a letter)"
            )
    return value


_CHECKS = {
    LoadDataParams: {"test_size": _split_fraction, "random_state": _seed},
    TrainParams: {"standardize": _flag},
    QuantizeParams: {
        "scheme": _choice(SCHEMES),
        "symmetric": _flag,
        "signed": _flag,
        "rounding": _choice(ROUNDINGS),
        "scale_search": _choice(SCALE_SEARCHES),
        "bias_correction": _flag,
    },
    IntegerQuantizeParams: {
        "granularity": _choice(GRANULARITIES),
        "calibration": _choice(CALIBRATIONS),
        "weight_scale_search": _flag,
        "bias_correction": _flag,
    },
    EvaluateParams: {"selfcheck_rows": _positive_int},
    SweepParams: {"min_bits": _bit_width, "max_bits": _bit_width, "schemes": _scheme_names},
}


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}") from None
    try:
        document = YAML(typ="safe").load(text)  # as DVC loads it
    except YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise PipelineError(f"{path} must be a mapping of sections, got {type(document).__name__}")
    return document


def _section(document: dict, dotted: str):
    node: Any = document
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise PipelineError(f"params.yaml: section {dotted} is missing")
        node = node[part]
    if not isinstance(node, dict):
        raise PipelineError(f"params.yaml: {dotted} must be a mapping of keys, got {node!r}")
    return node


def _build(cls, document: dict, dotted: str):
    section = _section(document, dotted)
    checks = _CHECKS[cls]
    allowed = ", ".join(checks)
    for key in section:
        if key not in checks:
            raise PipelineError(f"params.yaml: {dotted} has unknown key {key!r} (allowed keys: {allowed})")
    values = {}
    for field in fields(cls):
        if field.name not in section:
            raise PipelineError(f"params.yaml: {dotted}.{field.name} is missing (allowed keys: {allowed})")
        values[field.name] = checks[field.name](f"{dotted}.{field.name}", section[field.name])
    return cls(**values)


def load_data_params(path: Path = PARAMS) -> LoadDataParams:
    return _build(LoadDataParams, _read(path), "load_data")


def train_params(path: Path = PARAMS) -> TrainParams:
    return _build(TrainParams, _read(path), "train")


def quantize_params(model_name: str, path: Path = PARAMS) -> QuantizeParams:
    """The section ``quantize.<model_name>`` ('q8' or 'q16'), read by that quantize stage only."""
    return _build(QuantizeParams, _read(path), f"quantize.{model_name}")


def integer_quantize_params(path: Path = PARAMS) -> IntegerQuantizeParams:
    """The section ``quantize.q8int``, read by stage quantize-8int only."""
    return _build(IntegerQuantizeParams, _read(path), "quantize.q8int")


def evaluate_params(path: Path = PARAMS) -> EvaluateParams:
    return _build(EvaluateParams, _read(path), "evaluate")


def sweep_params(path: Path = PARAMS) -> SweepParams:
    """The section ``sweep``; each ``sweep.schemes.<name>`` takes the keys and checks of ``quantize.q8``."""
    document = _read(path)
    params = _build(SweepParams, document, "sweep")
    if params.min_bits > params.max_bits:
        raise PipelineError(f"params.yaml: sweep.min_bits ({params.min_bits}) must not exceed sweep.max_bits ({params.max_bits})")
    schemes = {name: _build(QuantizeParams, document, f"sweep.schemes.{name}") for name in params.schemes}
    return dataclasses.replace(params, schemes=schemes)
