"""Stage evaluate: score every model (float, q8, q16, q8int) on the test split.

Writes metrics/<model>.json for each model (its scores, size, and drop and deviations from the float
model: what `dvc metrics show/diff` and `dvc exp show` list), metrics/saturation.json (the integer
model's clipped test rows, a detail the report reads), and models/selfcheck.csv, the holdout sample
with every model's expected predictions that `python -m housing_predictor selfcheck` runs. The weight tables and plot data that the functions below compute are written by
stage report (dvc.yaml says why).
"""

from __future__ import annotations

import numpy as np

from housing_predictor import integer, paths
from housing_predictor.errors import PipelineError, run_guarded
from housing_predictor.files import write_json
from housing_predictor.linear import TARGET_UNIT_USD
from housing_predictor.modelfile import SavedModel
from housing_predictor.models import load_models
from housing_predictor.quantization import dequantize_model, payload_bytes, reference_weights
from stages import params
from stages.dataset import read_split, write_csv


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Regression scores, in the target's unit ($100,000) where they have one."""
    from sklearn import metrics

    return {
        "r2": float(metrics.r2_score(y_true, y_pred)),
        "mse": float(metrics.mean_squared_error(y_true, y_pred)),
        "rmse": float(metrics.root_mean_squared_error(y_true, y_pred)),
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "mape": float(metrics.mean_absolute_percentage_error(y_true, y_pred)),
        "max_error": float(metrics.max_error(y_true, y_pred)),
    }


def deviations(float_pred: np.ndarray, quantized_pred: np.ndarray) -> dict:
    """How far a quantized model's predictions are from the float model's, in dollars: the unit in
    the key keeps tiny figures readable in `dvc metrics show` (q16's RMS is about $1, 9.4e-6 in
    the target's unit, which DVC's default precision shows as 1e-05)."""
    from sklearn import metrics

    return {
        "rms_deviation_usd": float(metrics.root_mean_squared_error(float_pred, quantized_pred)) * TARGET_UNIT_USD,
        "max_deviation_usd": float(metrics.max_error(float_pred, quantized_pred)) * TARGET_UNIT_USD,
    }


def r2_drop_ppm(float_r2: float, quantized_r2: float) -> float:
    """Float R² minus the quantized model's, in millionths (q16's drop is about 1e-6 of R²)."""
    return (float_r2 - quantized_r2) * 1e6


def model_metrics(y: np.ndarray, predictions: dict[str, np.ndarray], saved: dict[str, SavedModel]) -> dict:
    """Per model (metrics/<model>.json) its scores and sizes; quantized ones add the R² drop and
    their deviations from the float model. Keys in a fixed order, plain numbers."""
    result = {}
    for name, pred in predictions.items():
        entry = scores(y, pred)
        entry["payload_bytes"] = payload_bytes(saved[name].tensors)
        entry["file_bytes"] = saved[name].file_bytes
        # The float model is what the others are measured against: it has no drop or deviation
        # (DVC shows '-'), where a 0 would read as a measurement that can never change.
        if name != "float":
            entry["r2_drop_ppm"] = r2_drop_ppm(result["float"]["r2"], entry["r2"])
            entry.update(deviations(predictions["float"], pred))
        result[name] = entry
    return result


def saturation_metrics(tensors: dict[str, np.ndarray], X: np.ndarray, float_pred: np.ndarray, pred: np.ndarray) -> dict:
    """The integer model's extra figures (metrics/saturation.json): how many test rows have an input
    outside its int8 grid (clipped), and the RMS deviation of the others, to tell clipping from
    rounding. Not in metrics/q8int.json: two keys only one model has would widen `dvc metrics show`
    past 180 columns (dvc.yaml)."""
    clipped = integer.saturated(tensors, X)
    kept = ~clipped
    rms = float(np.sqrt(np.mean((pred[kept] - float_pred[kept]) ** 2))) if kept.any() else 0.0
    return {"saturated_rows": int(clipped.sum()), "rms_deviation_unsaturated_usd": rms * TARGET_UNIT_USD}


def weight_table(float_model, saved: SavedModel) -> dict:
    """Each weight of a quantized model: the float value it stands for (in the space its scheme
    quantizes: standardized inputs for 'affine', raw features for the published schemes), the
    stored code, the dequantized value and the error; the same for the bias."""
    reference = reference_weights(float_model, saved.scheme)
    model = dequantize_model(saved.tensors, saved.scheme)
    codes = saved.tensors["weight_q"].tolist()
    rows = [
        {"feature": feature, "float": float(f), "code": int(c), "dequantized": float(d), "error": float(d - f)}
        for feature, f, c, d in zip(saved.features, reference.weight, codes, model.weight, strict=True)
    ]
    bias = {"float": reference.bias, "dequantized": model.bias, "error": model.bias - reference.bias}
    if "bias_q" in saved.tensors:
        bias["code"] = int(saved.tensors["bias_q"][0])
    grid = {
        name: saved.tensors[name].tolist()[0]
        for name in sorted(saved.tensors)
        if name.startswith("weight_") and name != "weight_q"
    }
    return {"scheme": saved.scheme, "bits": saved.bits, "grid": grid, "weights": rows, "bias": bias}


def check_selfcheck_rows(evaluate: params.Evaluate, test_rows: int) -> None:
    """The selfcheck sample is drawn from the test split: at most its ``test_rows`` rows. Stage
    validate checks it before any stage runs, with the split's size load-data will give."""
    if evaluate.selfcheck_rows > test_rows:
        raise PipelineError(
            f"params.yaml: evaluate.selfcheck_rows must be at most the {test_rows} test rows, got {evaluate.selfcheck_rows}"
        )


def selfcheck_rows(predictions: dict[str, np.ndarray], count: int) -> np.ndarray:
    """Test rows for the predictor's selfcheck: ``count`` evenly spaced, plus each quantized
    model's row of largest deviation, so the sample reproduces max_deviation exactly."""
    n_rows = len(predictions["float"])
    spread = np.linspace(0, n_rows - 1, count).round().astype(int)
    worst = [int(np.argmax(np.abs(pred - predictions["float"]))) for name, pred in predictions.items() if name != "float"]
    return np.unique(np.concatenate([spread, worst]))


def write_plot_data(y: np.ndarray, predictions: dict[str, np.ndarray], weights: dict) -> None:
    """plots/<model>.csv: actual, predicted, residual, and for quantized models the float model's
    prediction and the deviation from it in dollars; plots/weights_<model>.csv: each weight's error."""
    float_pred = predictions["float"]
    for name, pred in predictions.items():
        header, columns = ["actual", "predicted", "residual"], [y, pred, y - pred]
        if name != "float":
            header += ["float_predicted", "deviation_usd"]
            columns += [float_pred, (pred - float_pred) * TARGET_UNIT_USD]
        write_csv(paths.plot_file(name), header, columns)
    for name, table in weights.items():
        rows = table["weights"]
        columns = [[row[key] for row in rows] for key in ("feature", "float", "dequantized", "error")]
        write_csv(paths.weights_plot_file(name), ["feature", "float", "dequantized", "error"], columns)


def main() -> None:
    evaluate = params.load().evaluate
    X, y = read_split(paths.TEST_CSV)
    check_selfcheck_rows(evaluate, len(X))
    # The predictor's own loader (files verified by structure) and arithmetic: what it predicts for
    # a row is, bit for bit, what is scored here.
    models = load_models(paths.MODELS_DIR)
    saved = {name: model.saved for name, model in models.items()}
    predictions = {name: model.predict(X) for name, model in models.items()}
    for name, figures in model_metrics(y, predictions, saved).items():
        write_json(paths.metrics_file(name), figures)
    q8int = paths.INTEGER_MODEL
    saturation = saturation_metrics(saved[q8int].tensors, X, predictions["float"], predictions[q8int])
    write_json(paths.SATURATION_METRICS, {q8int: saturation})
    rows = selfcheck_rows(predictions, evaluate.selfcheck_rows)
    features = saved["float"].features
    write_csv(paths.SELFCHECK_CSV, [*features, *predictions], [X[rows], *(p[rows] for p in predictions.values())])


if __name__ == "__main__":
    run_guarded(main)
