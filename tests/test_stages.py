"""Unit tests of each stage's core functions, on the real California Housing data."""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest
from safetensors.numpy import load as safetensors_load

from housing_predictor import files, modelfile
from housing_predictor.errors import PipelineError
from housing_predictor.linear import LinearParams
from housing_predictor.quantization import dequantize_model, float_tensors, quantize_model
from stages import evaluate, load_data, params, train
from stages.dataset import FEATURES, TARGET, read_split, write_csv, write_split

from conftest import REPO, affine, run

COMMITTED_SPLIT = params.load(REPO / "params.yaml").load_data


@pytest.fixture(scope="module")
def housing():
    return load_data.fetch()


@pytest.fixture(scope="module")
def split(housing):
    X, y, _ = housing
    return load_data.split(X, y, COMMITTED_SPLIT)


# --- load-data -------------------------------------------------------------------------------


def test_fetch_gives_the_validated_housing_data(housing):
    X, y, names = housing
    load_data.validate(X, y, names)  # raises on anything else
    assert X.shape == (20_640, 8) and names == list(FEATURES)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda X, y, n: (X[:-1], y[:-1], n), "must have 20640 rows of 8 features"),
        (lambda X, y, n: (X, y, [*n[:-1], "Longitud"]), "features must be MedInc"),
        (lambda X, y, n: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y, n), "missing or infinite"),
    ],
)
def test_validate_rejects_wrong_data(housing, mutate, message):
    with pytest.raises(PipelineError, match=message):
        load_data.validate(*mutate(*housing))


def test_split_is_sklearns_seeded_split(housing, split):
    X_train, X_test, y_train, y_test = split
    assert len(X_test) == math.ceil(COMMITTED_SPLIT.test_size * len(housing[0])) == len(y_test)
    assert len(X_train) + len(X_test) == len(housing[0])
    again = load_data.split(housing[0], housing[1], COMMITTED_SPLIT)
    assert np.array_equal(again[1], X_test)
    other = load_data.split(
        housing[0], housing[1], COMMITTED_SPLIT.model_copy(update={"random_state": COMMITTED_SPLIT.random_state + 1})
    )
    assert not np.array_equal(other[1], X_test)


def load_data_stage(folder, data_home):
    """Stage load-data run in ``folder`` with scikit-learn's data folder ``data_home``."""
    (folder / "params.yaml").write_text((REPO / "params.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCIKIT_LEARN_DATA": str(data_home)}
    return run([sys.executable, "-m", "stages.load_data"], cwd=folder, check=False, env=env)


def test_missing_data_fails_with_how_to_fix(tmp_path):
    """No cache and no network (as here, with an empty data folder): one line that says where the
    cache file goes and which variable to set."""
    result = load_data_stage(tmp_path, tmp_path / "empty")
    if result.returncode == 0:
        pytest.skip("this machine could download the data set; the offline failure cannot be shown")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert "cal_housing_py3.pkz" in line and "SCIKIT_LEARN_DATA" in line and str(tmp_path / "empty") in line
    assert not (tmp_path / "data").exists()


def test_corrupted_cache_file_is_named(tmp_path):
    (tmp_path / "skl").mkdir()
    (tmp_path / "skl" / "cal_housing_py3.pkz").write_bytes(b"not a joblib file at all")
    result = load_data_stage(tmp_path, tmp_path / "skl")
    assert result.returncode == 2
    assert result.stderr.startswith("error: the cached California Housing file") and "corrupted" in result.stderr
    assert result.stderr.count("\n") == 1


# --- the split files ---------------------------------------------------------------------------


def test_split_file_round_trips_exactly(tmp_path, split):
    X_train, _, y_train, _ = split
    write_split(tmp_path / "train.csv", X_train, y_train)
    X, y = read_split(tmp_path / "train.csv")
    assert np.array_equal(X, X_train) and np.array_equal(y, y_train)
    assert (tmp_path / "train.csv").read_text().splitlines()[0] == ",".join((*FEATURES, TARGET))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1,2,3,4,5,6,7,8,9\n1,2,3\n", "malformed"),
        ("1,2,3,4,5,6,7,8,x\n", "malformed"),
        ("1,2,3,4,5,6,7,8,nan\n", "missing or infinite"),
        ("", "at least one row"),
    ],
)
def test_malformed_split_file_is_named(tmp_path, body, message):
    path = tmp_path / "test.csv"
    path.write_text(",".join((*FEATURES, TARGET)) + "\n" + body)
    with pytest.raises(PipelineError, match=message) as error:
        read_split(path)
    assert str(path) in str(error.value)


def test_wrong_header_and_missing_file(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(PipelineError, match="header must be MedInc"):
        read_split(path)
    with pytest.raises(PipelineError, match="missing: run `dvc repro load-data`"):
        read_split(tmp_path / "absent.csv")


# --- train -------------------------------------------------------------------------------------


def test_the_scaler_changes_no_prediction(split):
    """With or without the scaler the fit is the same function (the scaler exists for the int8
    grid, not for the fit)."""
    X_train, X_test, y_train, _ = split
    models = [train.linear_params(train.fit(X_train, y_train, params.Train(standardize=flag))) for flag in (True, False)]
    assert [model.standardized for model in models] == [True, False]
    np.testing.assert_allclose(models[0].predict(X_test), models[1].predict(X_test), rtol=0, atol=1e-10)


def test_linear_params_predict_like_the_estimator(split):
    X_train, X_test, y_train, _ = split
    estimator = train.fit(X_train, y_train, params.Train(standardize=True))
    model = train.linear_params(estimator)
    np.testing.assert_allclose(model.predict(X_test), estimator.predict(X_test), rtol=0, atol=1e-12)
    weight, bias = model.folded()
    np.testing.assert_allclose(X_test @ weight + bias, estimator.predict(X_test), rtol=0, atol=1e-9)


# --- evaluate ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored(split):
    X_train, X_test, y_train, y_test = split
    model = train.linear_params(train.fit(X_train, y_train, params.Train(standardize=True)))
    tensors = {"float": float_tensors(model)}
    schemes = {"float": "float", "q8": "affine", "q16": "affine"}
    for name, bits in (("q8", 8), ("q16", 16)):
        tensors[name] = quantize_model(model, X_train, bits, affine())
    saved = {
        name: modelfile.SavedModel(t, schemes[name], 64 if name == "float" else int(name[1:]), list(FEATURES), {}, 1000)
        for name, t in tensors.items()
    }
    predictions = {name: dequantize_model(t, schemes[name]).predict(X_test) for name, t in tensors.items()}
    return y_test, predictions, saved, model


def test_model_metrics_shape_and_meaning(scored):
    y_test, predictions, saved, _ = scored
    metrics = evaluate.model_metrics(y_test, predictions, saved)
    common = ["r2", "mse", "rmse", "mae", "mape", "max_error", "payload_bytes", "file_bytes"]
    assert list(metrics) == ["float", "q8", "q16"]
    assert list(metrics["float"]) == common
    for name in ("q8", "q16"):
        assert list(metrics[name]) == [*common, "r2_drop_ppm", "rms_deviation_usd", "max_deviation_usd"]
        assert metrics[name]["r2_drop_ppm"] == (metrics["float"]["r2"] - metrics[name]["r2"]) * 1e6
        deviation_usd = (predictions[name] - predictions["float"]) * 100_000  # the target is in $100,000
        assert metrics[name]["rms_deviation_usd"] == pytest.approx(np.sqrt(np.mean(deviation_usd**2)), rel=1e-12)
        assert metrics[name]["max_deviation_usd"] == pytest.approx(np.abs(deviation_usd).max(), rel=1e-12)
    assert metrics["float"]["rmse"] == pytest.approx(np.sqrt(metrics["float"]["mse"]), rel=1e-12)
    assert metrics["float"]["payload_bytes"] == 25 * 8  # scaler (16), weights (8), bias: float64
    assert metrics["q8"]["payload_bytes"] == 16 * 4 + 8 + 4 + 1 + 4  # f32 scaler, int8 w, scale, zero point, f32 bias
    assert metrics["q16"]["payload_bytes"] == 16 * 4 + 16 + 4 + 2 + 4
    json.dumps(metrics)  # plain numbers only


def test_selfcheck_rows_hold_each_models_worst_row(scored):
    _, predictions, _, _ = scored
    rows = evaluate.selfcheck_rows(predictions, 10)
    assert np.all(np.diff(rows) > 0) and 10 <= len(rows) <= 12
    for name in ("q8", "q16"):
        deviation = np.abs(predictions[name] - predictions["float"])
        assert deviation[rows].max() == deviation.max()


def test_weight_table_lists_every_weight(scored):
    _, _, saved, model = scored
    table = evaluate.weight_table(model, saved["q8"])
    assert [row["feature"] for row in table["weights"]] == list(FEATURES)
    scale = table["grid"]["weight_scale"]
    for row in table["weights"]:
        assert row["dequantized"] == pytest.approx(row["code"] * scale, rel=1e-12)
        assert row["error"] == pytest.approx(row["dequantized"] - row["float"], abs=1e-15)
        assert abs(row["error"]) <= scale / 2 * (1 + 1e-6)


def test_csv_round_trips_float64(tmp_path):
    values = np.array([0.1, 1 / 3, -2.5e-300, 123456789.123456789])
    write_csv(tmp_path / "x.csv", ["x"], [values])
    text = (tmp_path / "x.csv").read_text().splitlines()
    assert text[0] == "x"
    assert np.array_equal(np.array([float(v) for v in text[1:]]), values)


# --- model files -------------------------------------------------------------------------------


@pytest.fixture
def model_tensors():
    model = LinearParams(np.array([0.5, -2.0]), 1.25, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    return quantize_model(model, np.array([[1.0, 2.0], [3.0, 5.0]]), 8, affine())


SAVE = """
import sys, numpy as np
from housing_predictor.modelfile import save_model
tensors = {"weight_q": np.array([3, -7], np.int8), "weight_scale": np.array([0.5], np.float32),
           "weight_zero_point": np.array([0], np.int8), "bias": np.array([1.5], np.float32)}
save_model(sys.argv[1], tensors, scheme="affine", bits=8, features=["a", "b"], params={"q": {"z": 1, "a": [2, 3]}, "b": True})
"""


def test_model_files_are_the_same_bytes_under_any_hash_seed(tmp_path):
    """safetensors' own writer, given one metadata key, writes the same bytes every run (with
    several keys it would write them in hash-map order)."""
    written = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed}
        run([sys.executable, "-c", SAVE, str(tmp_path / f"{seed}.safetensors")], cwd=tmp_path, env=env)
        written.add((tmp_path / f"{seed}.safetensors").read_bytes())
    assert len(written) == 1


def test_model_file_round_trips(tmp_path, model_tensors):
    path = tmp_path / "q8.safetensors"
    modelfile.save_model(path, model_tensors, scheme="affine", bits=8, features=["a", "b"], params={"k": 1})
    first = path.read_bytes()
    modelfile.save_model(
        path, dict(reversed(model_tensors.items())), scheme="affine", bits=8, features=["a", "b"], params={"k": 1}
    )
    assert path.read_bytes() == first
    loaded = modelfile.load_model(path)
    assert (loaded.scheme, loaded.bits, loaded.features, loaded.params) == ("affine", 8, ["a", "b"], {"k": 1})
    assert loaded.file_bytes == len(first)
    for name, array in model_tensors.items():
        assert loaded.tensors[name].dtype == array.dtype and np.array_equal(loaded.tensors[name], array)
    assert set(safetensors_load(first)) == set(model_tensors)  # any safetensors reader reads it


def test_corrupted_model_files_are_refused_by_name(tmp_path, model_tensors):
    path = tmp_path / "q8.safetensors"
    modelfile.save_model(path, model_tensors, scheme="affine", bits=8, features=["a", "b"], params={})
    good = path.read_bytes()
    for damaged in (good[:-3], good[:5], b"", good[:-1] + bytes([good[-1] ^ 1]), b"\x00" * 8 + good[8:]):
        path.write_bytes(damaged)
        with pytest.raises(PipelineError, match=rf"model file {path} is corrupted"):
            modelfile.load_model(path)
    with pytest.raises(PipelineError, match="is missing: run `dvc repro`"):
        modelfile.load_model(tmp_path / "absent.safetensors")


# --- writing files -------------------------------------------------------------------------------


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    files.write_json(path, {"r2": 0.5})
    with pytest.raises(TypeError):
        files.write_json(path, {"r2": object()})
    assert json.loads(path.read_text()) == {"r2": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_metrics_never_hold_nan_or_infinity(tmp_path, bad):
    """JSON has no NaN: json.dumps would write a bare `NaN` that no strict reader accepts."""
    path = tmp_path / "evaluate.json"
    files.write_json(path, {"float": {"r2": 0.5}})
    with pytest.raises(PipelineError, match=rf"^{path}: not written, q8.r2 is not a finite number$"):
        files.write_json(path, {"float": {"r2": 0.5}, "q8": {"r2": bad, "rows": [1.0]}})
    assert json.loads(path.read_text()) == {"float": {"r2": 0.5}}


# --- the same bits on every machine ------------------------------------------------------------


def test_importing_stages_pins_the_blas_kernels_unless_already_chosen():
    probe = "import os, stages; print(os.environ.get('OPENBLAS_CORETYPE'))"
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    chosen = run([sys.executable, "-c", probe], cwd=REPO, env={**clean, "OPENBLAS_CORETYPE": "Sandybridge"}).stdout.strip()
    assert chosen == "Sandybridge"
    pinned = run([sys.executable, "-c", probe], cwd=REPO, env=clean).stdout.strip()
    cpu_flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    if "avx2" in cpu_flags and "fma" in cpu_flags:
        assert pinned == "Haswell"
    else:
        assert pinned == "None"
