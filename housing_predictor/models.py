"""A model as the CLI, the HTTP server and the evaluate stage use it: loaded by name, verified, and
predicting as the pipeline computes it, so each computes the same bits for the same row (the
shape of MLServer's ``MLModel`` and KServe's ``Model``: load, predict, metadata). numpy and safetensors only.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from housing_predictor import paths
from housing_predictor.errors import PipelineError
from housing_predictor.files import read_json
from housing_predictor.integer import IntegerModel
from housing_predictor.linear import FEATURES, LinearParams
from housing_predictor.modelfile import load_model
from housing_predictor.quantization import dequantize_model


class PredictionOverflow(PipelineError):
    """A row whose prediction overflows float64; ``row`` is its index in the rows predicted."""

    def __init__(self, row: int) -> None:
        super().__init__(f"row {row}: the prediction overflows float64 (feature values too large)")
        self.row = row


def params_hash(params: dict) -> str:
    """sha256 of the params in canonical JSON (sorted keys, no spaces): equal params, equal hash."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Model:
    """Model ``name`` (one of ``paths.MODELS``) from its verified file in ``models_dir``."""

    def __init__(self, name: str, models_dir: Path = paths.MODELS_DIR) -> None:
        self.name = name
        self.file = paths.model_file(name, Path(models_dir))
        self.saved = load_model(self.file)
        self._check_kind()
        if sorted(self.saved.features) != sorted(FEATURES):
            raise PipelineError(
                f"model file {self.file} is invalid: it reads {', '.join(self.saved.features)[:200]}, expected {', '.join(FEATURES)}"
            )
        self.arithmetic = self._arithmetic()

    @property
    def features(self) -> list[str]:
        """The columns ``predict`` takes, in this order."""
        return self.saved.features

    @functools.cached_property
    def version(self) -> str:
        """The sha256 of the params that built it (what `--version` prints and the server serves)."""
        return params_hash(self.saved.params)

    def metadata(self) -> dict:
        return {"scheme": self.saved.scheme, "bits": self.saved.bits, "params_sha256": self.version, "params": self.saved.params}

    def _check_kind(self) -> None:
        """The file holds the model asked for: q8's file is 8-bit affine-or-published, q8int's the
        integer model, the float model's unquantized (a file copied over another's is refused)."""
        saved, wanted = self.saved, paths.MODEL_BITS[self.name]
        is_float, is_integer = saved.scheme == "float", saved.scheme == "integer"
        if is_float != (wanted is None) or is_integer != (self.name == paths.INTEGER_MODEL) or (wanted and saved.bits != wanted):
            kind = "the float model" if wanted is None else f"the {wanted}-bit {'integer-only ' * is_integer}model"
            raise PipelineError(
                f"model file {self.file} holds a {saved.bits}-bit {saved.scheme} model, but {self.name} is {kind}"
            )

    def _arithmetic(self) -> LinearParams | IntegerModel:
        """The float64 model the file stands for, or for the integer-only model its integer arithmetic."""
        if self.saved.scheme == "integer":
            return IntegerModel(self.saved.tensors)
        model = dequantize_model(self.saved.tensors, self.saved.scheme)
        numbers = [model.weight, [model.bias], *([model.input_mean, model.input_scale] if model.standardized else [])]
        if not all(np.isfinite(values).all() for values in numbers):
            raise PipelineError(f"model file {self.file} is invalid: its dequantized weights overflow")
        return model

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (n_rows,) in $100,000 for ``X`` (n_rows, n_features) float64 in ``features``
        order; PredictionOverflow names the first row whose prediction is not finite."""
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming the row
            predictions = self.arithmetic.predict(X)
        overflowing = np.flatnonzero(~np.isfinite(predictions))
        if len(overflowing):
            raise PredictionOverflow(int(overflowing[0]))
        return predictions


def load_models(models_dir: Path = paths.MODELS_DIR) -> dict[str, Model]:
    """Every model (``paths.MODELS``), verified, all reading the same features in the same order."""
    models = {name: Model(name, models_dir) for name in paths.MODELS}
    first = models[paths.MODELS[0]]
    for model in models.values():
        if model.features != first.features:
            raise PipelineError(f"model {model.name} reads features {model.features}, model {first.name} {first.features}")
    return models


def load_metrics(metrics_dir: Path = paths.METRICS_DIR) -> dict[str, dict]:
    """Every model's figures (``paths.MODELS``' order), from stage evaluate's file per model."""
    return {name: read_json(paths.metrics_file(name, metrics_dir), "metrics file") for name in paths.MODELS}
