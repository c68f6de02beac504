"""Which input calibration of the integer-only model holds up on rows it was not calibrated on.

    python benchmarks/integer_calibration.py [--folds 5]

Run from the repository root after `dvc repro` (it reads models/float.safetensors and data/). Uses
the training split only: K folds (seeded), each calibrated and built on the other K - 1 folds and
measured on the held-out fold, against the float model's predictions. Prints, per calibration and
granularity of quantize.q8int, the RMS and largest deviation on the held-out rows (and over all
of them), with the deviation on the rows used to calibrate beside it. Then the same models
calibrated on the whole training split, on the test split (what `evaluate` measures for the one
params.yaml selects). Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from housing_predictor import integer, paths  # noqa: E402
from housing_predictor.modelfile import load_model  # noqa: E402
from housing_predictor.quantization import dequantize_model  # noqa: E402
from stages.dataset import read_split  # noqa: E402
from stages.params import IntegerOnly  # noqa: E402

SEED = 15
GRANULARITIES = typing.get_args(IntegerOnly.model_fields["granularity"].annotation)
CALIBRATIONS = typing.get_args(IntegerOnly.model_fields["calibration"].annotation)


def options(granularity: str, calibration: str) -> IntegerOnly:
    return IntegerOnly(granularity=granularity, calibration=calibration, weight_scale_search=True, bias_correction=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    folds = parser.parse_args().folds
    model = dequantize_model(load_model(paths.model_file("float")).tensors, "float")
    X, _ = read_split(paths.TRAIN_CSV)
    target = model.predict(X)
    fold_of = np.random.default_rng(SEED).permutation(len(X)) % folds
    print(f"training split, {len(X)} rows in {folds} folds; deviation from the float model's predictions")
    print(
        f"{'granularity':12} {'calibration':12} {'held-out rms':>13} {'held-out max':>13} {'fitted rms':>11} {'clipped rows':>13}"
    )
    for granularity in GRANULARITIES:
        for calibration in CALIBRATIONS:
            held_out = np.empty(len(X))
            fitted_sq, clipped = [], 0
            for fold in range(folds):
                fit_rows, test_rows = fold_of != fold, fold_of == fold
                tensors = integer.quantize_integer(model, X[fit_rows], options(granularity, calibration))
                held_out[test_rows] = integer.predict(tensors, X[test_rows]) - target[test_rows]
                fitted_sq.append(np.mean((integer.predict(tensors, X[fit_rows]) - target[fit_rows]) ** 2))
                clipped += int(integer.saturated(tensors, X[test_rows]).sum())
            rms = float(np.sqrt(np.mean(held_out**2)))
            fitted = float(np.sqrt(np.mean(fitted_sq)))
            print(f"{granularity:12} {calibration:12} {rms:13.4f} {np.max(np.abs(held_out)):13.3f} {fitted:11.4f} {clipped:13d}")
    test_X, test_y = read_split(paths.TEST_CSV)
    float_pred = model.predict(test_X)
    print(f"\ntest split, {len(test_X)} rows, calibrated on the whole training split")
    print(f"{'granularity':12} {'calibration':12} {'rms':>8} {'max':>8} {'R² drop':>9} {'clipped rows':>13}")
    for granularity in GRANULARITIES:
        for calibration in CALIBRATIONS:
            tensors = integer.quantize_integer(model, X, options(granularity, calibration))
            pred = integer.predict(tensors, test_X)
            rms = float(np.sqrt(np.mean((pred - float_pred) ** 2)))
            drop = r2(test_y, float_pred) - r2(test_y, pred)
            clipped = int(integer.saturated(tensors, test_X).sum())
            print(
                f"{granularity:12} {calibration:12} {rms:8.4f} {np.max(np.abs(pred - float_pred)):8.3f} {drop:9.4f} {clipped:13d}"
            )


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


if __name__ == "__main__":
    main()
