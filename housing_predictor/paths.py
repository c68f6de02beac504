"""Every path the pipeline reads or writes, relative to the repository root (DVC's working dir),
and the models it builds. dvc.yaml names the same files; tests/test_dvc_yaml.py checks that the
two agree.
"""

from pathlib import Path

PARAMS = Path("params.yaml")

DATA_DIR = Path("data")
PARAMS_STAMP = DATA_DIR / "params.valid"  # stage validate's: params.yaml passed
TRAIN_CSV = DATA_DIR / "train.csv"
TEST_CSV = DATA_DIR / "test.csv"

MODELS_DIR = Path("models")
SKLEARN_MODEL = MODELS_DIR / "model.joblib"
SELFCHECK_CSV = MODELS_DIR / "selfcheck.csv"

METRICS_DIR = Path("metrics")
TRAIN_METRICS = METRICS_DIR / "train.json"
SATURATION_METRICS = METRICS_DIR / "saturation.json"  # the integer model's clipped test rows
WEIGHTS_TABLE = METRICS_DIR / "weights.json"
SWEEP_METRICS = METRICS_DIR / "sweep.json"

PLOTS_DIR = Path("plots")
SWEEP_PLOT = PLOTS_DIR / "sweep.csv"
REPORT = Path("reports") / "quantization.md"

# The models the pipeline builds and the image ships, in the order stage evaluate scores them, and
# the bit width each one's file must hold (the float model: none, it is not quantized). q8 and q16
# are weight-only (int codes, float arithmetic); q8int is integer-only (housing_predictor/integer.py).
INTEGER_MODEL = "q8int"
MODEL_BITS = {"float": None, "q8": 8, "q16": 16, INTEGER_MODEL: 8}
MODELS = tuple(MODEL_BITS)
WEIGHT_ONLY_MODELS = ("q8", "q16")  # built by stage quantize --bits N; per-weight tables and plots


def model_file(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """The safe (no pickle) parameter file of model ``name`` (one of MODELS)."""
    return models_dir / f"{name}.safetensors"


def onnx_file(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """Model ``name`` as an ONNX graph."""
    return models_dir / f"{name}.onnx"


def metrics_file(name: str, metrics_dir: Path = METRICS_DIR) -> Path:
    """Model ``name``'s test-split scores, size, and drop and deviations from the float model (stage
    evaluate): one file per model, all with the same keys, so that `dvc metrics show` prints one
    narrow row per model and `dvc metrics diff` lists every figure."""
    return metrics_dir / f"{name}.json"


def plot_file(name: str) -> Path:
    """Test-split predictions of model ``name``: actual, predicted, residual."""
    return PLOTS_DIR / f"{name}.csv"


def weights_plot_file(name: str) -> Path:
    """Per-weight errors of weight-only model ``name``: feature, float, dequantized, error."""
    return PLOTS_DIR / f"weights_{name}.csv"
