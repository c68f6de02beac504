"""Loading a model by name, verified, and predicting with it: what the CLI, the HTTP server and the
evaluate stage share, so that each computes the same bits for the same row. numpy only, no CLI.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from housing_predictor import paths
from housing_predictor.artifacts import SavedModel, load_model
from housing_predictor.errors import PipelineError
from housing_predictor.integer import IntegerModel
from housing_predictor.linear import FEATURES, LinearParams
from housing_predictor.quantization import dequantize_model

# The bit width each model's file must hold (the float model: none, it is not quantized).
MODEL_BITS = {**paths.QUANTIZED_BITS, paths.INTEGER_MODEL: 8}


def load_saved(name: str, models_dir: Path) -> SavedModel:
    """Model ``name``'s file, verified by checksum and structure, and holding the model asked for:
    q8's file must be 8-bit, the float model's unquantized (a copied-over file is refused)."""
    path = paths.model_file(name, models_dir)
    saved = load_model(path)
    expected = MODEL_BITS.get(name)
    integer_only = name == paths.INTEGER_MODEL
    if (
        (saved.scheme == "float") != (expected is None)
        or (expected is not None and saved.bits != expected)
        or (saved.scheme == "integer") != integer_only
    ):
        wanted = "the float model" if expected is None else f"the {expected}-bit {'integer-only ' if integer_only else ''}model"
        raise PipelineError(f"model file {path} holds a {saved.bits}-bit {saved.scheme} model, but {name} is {wanted}")
    if sorted(saved.features) != sorted(FEATURES):
        raise PipelineError(
            f"model file {path} is invalid: it reads {', '.join(saved.features)[:200]}, expected {', '.join(FEATURES)}"
        )
    return saved


def load_linear(name: str, models_dir: Path) -> tuple[SavedModel, LinearParams | IntegerModel]:
    """Model ``name``'s verified file and the model that predicts as the pipeline computes it: the
    float64 model it stands for, or for the integer-only model its integer arithmetic."""
    saved = load_saved(name, models_dir)
    if saved.scheme == "integer":
        return saved, IntegerModel(saved.tensors)
    model = dequantize_model(saved.tensors, saved.scheme)
    numbers = [model.weight, [model.bias], *([model.input_mean, model.input_scale] if model.standardized else [])]
    if not all(np.isfinite(values).all() for values in numbers):
        raise PipelineError(f"model file {paths.model_file(name, models_dir)} is invalid: its dequantized weights overflow")
    return saved, model


def predict_rows(model: LinearParams | IntegerModel, X: np.ndarray) -> tuple[np.ndarray, int | None]:
    """``model``'s predictions for rows ``X``, and the index of the first row whose prediction
    overflows float64 (None when every one is finite), for the caller to name in its own terms."""
    with np.errstate(over="ignore", invalid="ignore"):  # reported by the caller, naming the row
        predictions = model.predict(X)
    overflowing = np.flatnonzero(~np.isfinite(predictions))
    return predictions, (int(overflowing[0]) if len(overflowing) else None)


def params_hash(params: dict) -> str:
    """sha256 of the params in canonical JSON (sorted keys, no spaces): equal params, equal hash."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
