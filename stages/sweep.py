"""Stage sweep: how error grows as bits shrink, for each quantization scheme.

For every bit width from ``sweep.min_bits`` to ``sweep.max_bits`` and every scheme in
``sweep.schemes``, quantizes the float model exactly as quantize-8/16 do (``quantize_model``),
predicts the test split through the dequantized model as evaluate does, and
scores it with evaluate's own functions. So at 8 and 16 bits the affine figures equal
metrics/q8.json and metrics/q16.json to the last bit (tests/test_sweep.py checks it, when the
sweep's affine scheme is quantize.q8's).

Writes metrics/sweep.json (scheme -> bits -> r2_drop_ppm, rms_deviation_usd, max_deviation_usd,
payload_bytes) and plots/sweep.csv (one row per scheme and width, for the sweep plots).
One process, pure numpy for the quantization: the compute takes well under a second
(benchmarks/pipeline_benchmark.py prints it).
"""

from __future__ import annotations

import numpy as np

from housing_predictor import paths
from housing_predictor.errors import run_guarded
from housing_predictor.files import write_json
from housing_predictor.linear import LinearParams
from housing_predictor.modelfile import load_model
from housing_predictor.quantization import Scheme, dequantize_model, payload_bytes, quantize_model
from stages import params
from stages.dataset import read_split, write_csv
from stages.evaluate import deviations, r2_drop_ppm

PLOT_COLUMNS = ["scheme", "bits", "r2_drop_ppm", "abs_r2_drop", "rms_deviation_usd", "max_deviation_usd", "payload_bytes"]


def sweep(
    model: LinearParams,
    train_X: np.ndarray,
    test_X: np.ndarray,
    test_y: np.ndarray,
    schemes: dict[str, Scheme],
    bit_widths: range,
) -> dict[str, dict[str, dict]]:
    """scheme name -> str(bits) -> figures: R² drop (ppm), deviations from the float model ($) and
    payload bytes of ``model`` quantized that way. Arrays: ``*_X`` (n_rows, n_features) raw
    features, ``test_y`` (n_rows,) in $100,000."""
    from sklearn.metrics import r2_score

    float_pred = model.predict(test_X)
    float_r2 = float(r2_score(test_y, float_pred))
    result: dict[str, dict[str, dict]] = {}
    for name, scheme in schemes.items():
        result[name] = {}
        for bits in bit_widths:
            tensors = quantize_model(model, train_X, bits, scheme)
            pred = dequantize_model(tensors, scheme.scheme).predict(test_X)
            result[name][str(bits)] = {
                "r2_drop_ppm": r2_drop_ppm(float_r2, float(r2_score(test_y, pred))),
                **deviations(float_pred, pred),
                "payload_bytes": payload_bytes(tensors),
            }
    return result


def plot_rows(figures: dict[str, dict[str, dict]]) -> list[list]:
    """The columns of plots/sweep.csv (PLOT_COLUMNS); abs_r2_drop is |R² drop| (not ppm), for a log axis."""
    rows = [
        [name, int(bits), entry["r2_drop_ppm"], abs(entry["r2_drop_ppm"]) / 1e6, *(entry[key] for key in PLOT_COLUMNS[4:])]
        for name, by_bits in figures.items()
        for bits, entry in by_bits.items()
    ]
    return [list(column) for column in zip(*rows, strict=True)]


def main() -> None:
    study = params.load().sweep
    model = dequantize_model(load_model(paths.model_file("float")).tensors, "float")
    train_X, _ = read_split(paths.TRAIN_CSV)
    test_X, test_y = read_split(paths.TEST_CSV)
    figures = sweep(model, train_X, test_X, test_y, study.schemes, range(study.min_bits, study.max_bits + 1))
    write_json(paths.SWEEP_METRICS, figures)
    write_csv(paths.SWEEP_PLOT, PLOT_COLUMNS, plot_rows(figures))


if __name__ == "__main__":
    run_guarded(main)
