"""ONNX Runtime's own quantizers on our float graph, beside our weight-only and integer-only 8-bit.

    python benchmarks/ort_quantizers.py

Run from the repository root after `dvc repro` (it reads models/ and data/). Builds our float model
as a float32 ONNX graph (what ONNX Runtime's quantizers take), twice: with the StandardScaler
explicit (our float graph) and with the scaler folded into the weights (the raw LinearRegression
the published write-ups quantized). Applies `quantize_dynamic` (int8 weights, activations quantized
per batch at run time) and `quantize_static` in QDQ and QOperator form (int8 weights, uint8
activations, MinMax calibration on the training split, as its defaults), runs every result in ONNX
Runtime on the test split and prints R², R² drop and the deviation from the float predictions,
with our models/q8.onnx and models/q8int.onnx run the same way. Asserts nothing: figures only.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from housing_predictor import paths  # noqa: E402
from housing_predictor.modelfile import load_model  # noqa: E402
from housing_predictor.quantization import dequantize_model, float_tensors  # noqa: E402
from stages import export_onnx  # noqa: E402
from stages.dataset import read_split  # noqa: E402

CALIBRATION_ROWS = 2048  # training rows the static quantizers calibrate on (evenly spaced)


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def run(model_path: Path, X: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, {export_onnx.INPUT: X})[0][:, 0].astype(np.float64)


def float32_graphs(folder: Path) -> dict[str, Path]:
    """Our float model as float32 graphs: scaler explicit, and folded into the weights."""
    model = dequantize_model(load_model(paths.model_file("float")).tensors, "float")
    graphs = {"scaler explicit": float_tensors(model), "scaler folded": float_tensors(model.raw())}
    written = {}
    for name, tensors in graphs.items():
        path = folder / f"float32 {name}.onnx"
        path.write_bytes(export_onnx.checked_bytes(export_onnx.float_graph(tensors, np.float32)))
        written[name] = path
    return written


def ort_quantized(source: Path, train_X: np.ndarray, folder: Path) -> dict[str, Path]:
    """``source`` through quantize_dynamic and quantize_static (QDQ, QOperator)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    rows = train_X[np.linspace(0, len(train_X) - 1, CALIBRATION_ROWS).round().astype(int)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{export_onnx.INPUT: rows}])

        def get_next(self):
            return next(self.batches, None)

    results = {}
    target = folder / f"{source.stem} dynamic.onnx"
    quantize_dynamic(source, target, weight_type=QuantType.QInt8)
    results["quantize_dynamic, int8 weights"] = target
    for quant_format in (QuantFormat.QDQ, QuantFormat.QOperator):
        target = folder / f"{source.stem} static {quant_format.name}.onnx"
        quantize_static(
            source, target, Reader(), quant_format=quant_format, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8
        )
        results[f"quantize_static {quant_format.name}, int8 weights, uint8 activations"] = target
    return results


def main() -> None:
    train_X, _ = read_split(paths.TRAIN_CSV)
    X, y = read_split(paths.TEST_CSV)
    float_pred = run(paths.onnx_file("float"), X)
    float_r2 = r2(y, float_pred)
    rows = []
    for name in ("q8", paths.INTEGER_MODEL):
        rows.append((f"ours, models/{name}.onnx", run(paths.onnx_file(name), X)))
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        for graph_name, source in float32_graphs(folder).items():
            rows.append((f"ONNX Runtime, float32 graph ({graph_name})", run(source, X)))
            for method, path in ort_quantized(source, train_X, folder).items():
                rows.append((f"ONNX Runtime {method} ({graph_name})", run(path, X)))
    print(f"test split: {len(y)} rows; float model (models/float.onnx in ONNX Runtime) R² {float_r2:.6f}")
    print(f"{'model':86} {'R²':>10} {'R² drop':>10} {'rms dev':>10} {'max dev':>10}")
    for label, pred in rows:
        deviation = pred - float_pred
        rms = float(np.sqrt(np.mean(deviation**2)))
        print(f"{label:86} {r2(y, pred):10.6f} {float_r2 - r2(y, pred):10.2g} {rms:10.2g} {np.max(np.abs(deviation)):10.2g}")


if __name__ == "__main__":
    main()
