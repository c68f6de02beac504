"""Every path the pipeline reads or writes, relative to the repository root (DVC's working dir).

dvc.yaml names the same files; tests/test_dvc_yaml.py checks that the two agree.
"""

from pathlib import Path

PARAMS = Path("params.yaml")

DATA_DIR = Path("data")
TRAIN_CSV = DATA_DIR / "train.csv"
TEST_CSV = DATA_DIR / "test.csv"

MODELS_DIR = Path("models")
SKLEARN_MODEL = MODELS_DIR / "model.joblib"
SELFCHECK_CSV = MODELS_DIR / "selfcheck.csv"

METRICS_DIR = Path("metrics")
TRAIN_METRICS = METRICS_DIR / "train.json"
EVALUATE_METRICS = METRICS_DIR / "evaluate.json"
WEIGHTS_TABLE = METRICS_DIR / "weights.json"
SWEEP_METRICS = METRICS_DIR / "sweep.json"

PLOTS_DIR = Path("plots")
SWEEP_PLOT = PLOTS_DIR / "sweep.csv"
REPORT = Path("reports") / "quantization.md"

# The models evaluate scores, in the order they appear in metrics/evaluate.json.
MODEL_NAMES = ("float", "q8", "q16")
QUANTIZED_BITS = {"q8": 8, "q16": 16}


def model_file(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """The safe (no pickle) parameter file of model ``name`` ('float', 'q8' or 'q16')."""
    return models_dir / f"{name}.safetensors"


def plot_file(name: str) -> Path:
    """Test-split predictions of model ``name``: actual, predicted, residual."""
    return PLOTS_DIR / f"{name}.csv"


def weights_plot_file(name: str) -> Path:
    """Per-weight errors of quantized model ``name``: feature, float, dequantized, error."""
    return PLOTS_DIR / f"weights_{name}.csv"


# The integer-only 8-bit model (stage quantize-8int): scored by evaluate, exported by export-onnx,
# predicted and served like the others, but with arithmetic of its own (housing_predictor/integer.py).
INTEGER_MODEL = "q8int"
ALL_MODEL_NAMES = (*MODEL_NAMES, INTEGER_MODEL)


def onnx_file(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """Model ``name`` as an ONNX graph."""
    return models_dir / f"{name}.onnx"
