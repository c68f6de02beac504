"""The predictor (housing_predictor/cli.py): its CSV contract, deterministic predictions, its commands.

The CLI runs from the work tree on the artifacts the stages built (``built``); hostile input and
outputs are tested in test_predict_hostile.py, the image as a whole in test_image.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from housing_predictor import csv_io, linear, paths
from housing_predictor.cli import format_predictions
from housing_predictor.errors import PipelineError
from housing_predictor.linear import TARGET_UNIT_USD
from housing_predictor.modelfile import load_model
from housing_predictor.models import Model

from conftest import REPO, run

FEATURES = list(linear.FEATURES)
HEADER = ",".join(FEATURES)
ROW = "8.3252,41.0,6.984126984126984,1.0238095238095237,322.0,2.5555555555555554,37.88,-122.23"


# --- the CSV reader ----------------------------------------------------------------------------


def read_all(text: bytes, columns=FEATURES, block_chars: int = csv_io.BLOCK_CHARS) -> np.ndarray:
    return np.concatenate(list(csv_io.read_table(io.BytesIO(text), columns, "input", block_chars)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=8, max_size=8), min_size=1, max_size=40))
def test_reader_reads_repr_exactly(rows):
    """Every finite float64, written with repr as the pipeline writes it, reads back bit for bit."""
    text = (HEADER + "\n" + "".join(",".join(map(repr, row)) + "\n" for row in rows)).encode()
    got = read_all(text)
    expected = np.array(rows)
    assert got.tobytes() == expected.tobytes()


def test_columns_in_any_order():
    rows = [[float(i * 8 + j) + 0.25 for j in range(8)] for i in range(5)]
    order = [3, 7, 0, 5, 1, 6, 2, 4]
    text = ",".join(FEATURES[j] for j in order) + "\n" + "".join(",".join(repr(r[j]) for j in order) + "\n" for r in rows)
    np.testing.assert_array_equal(read_all(text.encode()), np.array(rows))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("block_chars", [1, 7, 64, 1000])
def test_blocks_cut_anywhere_give_the_same_rows(block_chars, newline):
    rng = np.random.default_rng(block_chars)
    X = rng.lognormal(0, 3, (300, 8)) * rng.choice([-1, 1], (300, 8))
    lines = [HEADER, *(",".join(map(repr, row)) for row in X.tolist())]
    text = (newline.join(lines) + newline).encode()
    np.testing.assert_array_equal(read_all(text, block_chars=block_chars), X)


def write_with_csv_module(rows: list[list[float]], **options) -> bytes:
    """What Python's csv writer (and tools like it) produce."""
    out = io.StringIO()
    writer = csv.writer(out, **options)
    writer.writerow(FEATURES)
    writer.writerows(rows)
    return out.getvalue().encode()


ROWS = [[float(v) for v in ROW.split(",")], [1.5, 2.0, 3.25, 1e-3, 1000.0, 2.5, 34.0, -118.5]]
CSV_AS_TOOLS_WRITE_IT = {
    "every field quoted (csv.QUOTE_ALL)": write_with_csv_module(ROWS, quoting=csv.QUOTE_ALL),
    "R's write.csv (quoted names, CRLF)": (
        '"' + '","'.join(FEATURES) + '"\r\n' + "".join(",".join(map(repr, r)) + "\r\n" for r in ROWS)
    ).encode(),
    "CR-only line endings": ("\r".join([HEADER, *(",".join(map(repr, r)) for r in ROWS)]) + "\r").encode(),
    "BOM, no final newline": ("\ufeff" + "\n".join([HEADER, *(",".join(map(repr, r)) for r in ROWS)])).encode(),
    "blank lines anywhere": (
        "\n\n" + HEADER + "\n\n" + ",".join(map(repr, ROWS[0])) + "\n \t\n\r\n" + ",".join(map(repr, ROWS[1])) + "\n\n\n"
    ).encode(),
    "scientific notation and spaces": (
        " "
        + " , ".join(FEATURES)
        + " \n"
        + ",".join(f" {v:e} " for v in ROWS[0])
        + "\n"
        + ",".join(f"{v:E}" for v in ROWS[1])
        + "\n"
    ).encode(),
}


@pytest.mark.parametrize("text", CSV_AS_TOOLS_WRITE_IT.values(), ids=CSV_AS_TOOLS_WRITE_IT.keys())
def test_csv_as_tools_write_it(text):
    got = read_all(text)
    np.testing.assert_array_equal(got[:, 0], [ROWS[0][0], ROWS[1][0]])
    np.testing.assert_allclose(got, ROWS, rtol=1e-6)  # "%e" keeps 7 digits


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "input is empty"),
        (b"\n\n", "input is empty"),
        (HEADER.encode() + b"\n", "input has a header but no data rows"),
        (HEADER.encode() + b"\n\n\r\n", "input has a header but no data rows"),
        (b"MedInc,HouseAge\n1,2\n", "missing columns AveRooms, AveBedrms, Population, AveOccup, Latitude, Longitude"),
        ((HEADER + ",Colour,Size\n").encode(), "unknown columns 'Colour', 'Size'"),
        ((HEADER + ",MedInc\n").encode(), "repeated column MedInc"),
        ((HEADER + "\n" + ROW + "\n" + ROW + ",9\n").encode(), "input line 3 has 9 fields, expected 8"),
        ((HEADER + "\n" + ROW + "\n" + ROW[:20] + "\n").encode(), "input line 3 has 3 fields, expected 8"),
        ((HEADER + "\n" + ROW + ",9\n" + ROW + ",9\n").encode(), "input line 2 has 9 fields, expected 8"),
        (
            (HEADER + "\n" + ROW.replace("41.0", "41.0.0") + "\n").encode(),
            "input line 2, column HouseAge: '41.0.0' is not a number",
        ),
        (
            (HEADER + "\n" + ROW.replace("41.0", '"41.0"x') + "\n").encode(),
            "input line 2, column HouseAge: '41.0x' is not a number",
        ),
        (
            (HEADER + "\n" + ROW.replace("41.0", "NaN") + "\n").encode(),
            "input line 2, column HouseAge: 'NaN' is not a finite number",
        ),
        ((HEADER + "\n" + ROW.replace("41.0", "-inf") + "\n").encode(), "'-inf' is not a finite number"),
        ((HEADER + "\n" + ROW.replace("41.0", "1e999") + "\n").encode(), "'1e999' is not a finite number"),
        ((HEADER + "\n" + ROW.replace("41.0", "1_000") + "\n").encode(), "'1_000' is not a number"),
        ((HEADER + "\n" + ROW.replace("41.0", "") + "\n").encode(), "input line 2, column HouseAge is empty"),
        ((HEADER + "\n" + ROW.replace("41.0", "4-1") + "\n").encode(), "'4-1' is not a number"),
        ((HEADER + "\n" + ROW.replace("41.0", "4\x001") + "\n").encode(), "input line 2 is not UTF-8 text"),
        ((HEADER + "\n" + ROW + "\n" + ROW.replace("41.0", "\xe9") + "\n").encode("latin-1"), "input line 3 is not UTF-8 text"),
        (b"\xff\xfe" + HEADER.encode() + b"\n", "line 1 (the header) is not UTF-8 text"),
    ],
)
def test_bad_input_is_named(text, message):
    with pytest.raises(PipelineError, match=re.escape(message)):
        read_all(text)


def test_a_line_too_long_is_refused_before_it_fills_memory():
    with pytest.raises(PipelineError, match="input line 2 is longer than"):
        read_all(HEADER.encode() + b"\n" + b"1" * (csv_io.MAX_LINE_CHARS + 10))


def test_line_numbers_count_across_blocks_and_blank_lines():
    lines = [ROW] * 500
    lines[100] = lines[200] = ""
    lines[436] = ROW.replace("37.88", "x")
    text = (HEADER + "\n" + "\n".join(lines) + "\n").encode()
    with pytest.raises(PipelineError, match=r"input line 438, column Latitude: 'x' is not a number"):
        read_all(text, block_chars=1000)
    lines[436] = ROW + ",1"
    with pytest.raises(PipelineError, match=r"input line 438 has 9 fields"):
        read_all(("\n".join([HEADER, *lines]) + "\n").encode(), block_chars=1000)


def test_predictions_round_trip():
    values = np.random.default_rng(0).lognormal(0, 2, 1000)
    text = format_predictions(values).decode()
    np.testing.assert_array_equal(np.array([float(v) for v in text.split()]), values)


# --- deterministic predictions -----------------------------------------------------------------


@pytest.fixture(scope="module")
def models(built) -> dict:
    return {name: Model(name, built / "models") for name in paths.MODELS}


feature_rows = st.lists(
    st.tuples(
        st.floats(0.4, 15.0),
        st.floats(1, 52),
        st.floats(0.8, 150),
        st.floats(0.3, 35),
        st.floats(3, 36_000),
        st.floats(0.7, 1250),
        st.floats(32.5, 42),
        st.floats(-124.4, -114.3),
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(rows=feature_rows, name=st.sampled_from(paths.MODELS))
def test_a_rows_prediction_does_not_depend_on_its_neighbours(models, rows, name):
    """Random rows predicted one at a time and all at once give the same bytes."""
    X = np.array(rows)
    model = models[name]
    alone = b"".join(format_predictions(model.predict(X[i : i + 1])) for i in range(len(X)))
    assert format_predictions(model.predict(X)) == alone
    padded = np.concatenate([X, np.random.default_rng(len(X)).uniform(1, 50, (4096, 8))])  # a big batch
    assert format_predictions(model.predict(padded)[: len(X)]) == alone


# --- the commands, on real artifacts -----------------------------------------------------------


def run_cli(built: Path, args: list[str], stdin: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m housing_predictor` from the work tree, on ``built``'s artifacts."""
    paths = ["--models-dir", str(built / "models"), "--metrics", str(built / "metrics")]
    return subprocess.run(
        [sys.executable, "-m", "housing_predictor", *paths, *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        **kwargs,
    )


def test_predict_gives_what_evaluate_scored(built):
    """The test split through the CLI: float, q8 and q16 give, byte for byte, the predictions
    evaluate wrote (plots/); q8int, which has no plot file, the deviations evaluate recorded."""
    table = np.loadtxt(built / "data" / "test.csv", delimiter=",", skiprows=1)
    features_text = HEADER + "\n" + "\n".join(",".join(map(repr, row)) for row in table[:, :8].tolist()) + "\n"
    predicted = {}
    for name in paths.MODELS:
        result = run_cli(built, ["predict", "--model", name], stdin=features_text)
        assert result.returncode == 0, result.stderr
        header, *predicted[name] = result.stdout.splitlines()
        assert header == "prediction"
    for name in ("float", *paths.WEIGHT_ONLY_MODELS):
        assert predicted[name] == [line.split(",")[1] for line in (built / paths.plot_file(name)).read_text().splitlines()[1:]]
    recorded = json.loads((built / paths.metrics_file("q8int")).read_text())
    deviation = np.abs(np.array(predicted["q8int"], dtype=float) - np.array(predicted["float"], dtype=float))
    assert deviation.max() * TARGET_UNIT_USD == pytest.approx(recorded["max_deviation_usd"], rel=1e-12)
    assert np.sqrt(np.mean(deviation**2)) * TARGET_UNIT_USD == pytest.approx(recorded["rms_deviation_usd"], rel=1e-9)


def test_selfcheck_checks_every_model_on_the_pipelines_artifacts(built):
    result = run_cli(built, ["selfcheck"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == list(paths.MODELS)
    assert lines[-1].startswith(f"selfcheck passed: {len(paths.MODELS)} models agree")


@pytest.fixture
def artifacts_copy(built, tmp_path) -> Path:
    shutil.copytree(built / "models", tmp_path / "models")
    shutil.copytree(built / "metrics", tmp_path / "metrics")
    return tmp_path


def selfcheck_copy(copy: Path) -> subprocess.CompletedProcess:
    return run_cli(copy, ["selfcheck"])


def test_selfcheck_fails_on_a_wrong_expected_prediction(artifacts_copy):
    sample = artifacts_copy / "models" / "selfcheck.csv"
    lines = sample.read_text().splitlines()
    values, q8 = lines[5].split(","), lines[0].split(",").index("q8")
    values[q8] = repr(float(values[q8]) + 1e-7)  # q8's expected prediction, off by 1e-7
    lines[5] = ",".join(values)
    sample.write_text("\n".join(lines) + "\n")
    result = selfcheck_copy(artifacts_copy)
    assert result.returncode == 2 and "selfcheck failed: q8 predictions differ" in result.stderr, result.stderr


def test_selfcheck_fails_when_metrics_disagree(artifacts_copy):
    path = artifacts_copy / paths.metrics_file("q16")
    metrics = json.loads(path.read_text())
    metrics["max_deviation_usd"] *= 1.01
    path.write_text(json.dumps(metrics))
    result = selfcheck_copy(artifacts_copy)
    assert result.returncode == 2 and "q16 deviates from float" in result.stderr, result.stderr


def test_selfcheck_without_its_sample(artifacts_copy):
    (artifacts_copy / "models" / "selfcheck.csv").unlink()
    result = selfcheck_copy(artifacts_copy)
    assert result.returncode == 2 and "selfcheck.csv is missing" in result.stderr


def test_version_is_provenance(built):
    result = run_cli(built, ["--version"], env={**os.environ, "GIT_COMMIT": "abc123"})
    assert result.returncode == 0, result.stderr
    provenance = json.loads(result.stdout)
    assert provenance["git_commit"] == "abc123"
    assert list(provenance["models"]) == list(paths.MODELS)
    assert provenance["metrics"] == {name: json.loads((built / paths.metrics_file(name)).read_text()) for name in paths.MODELS}
    for name, entry in provenance["models"].items():
        params = load_model(built / "models" / f"{name}.safetensors").params
        assert entry["params"] == params
        assert (
            entry["params_sha256"]
            == hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        )
    assert provenance["models"]["q8"]["params"]["quantize"] != provenance["models"]["q16"]["params"]["quantize"]


def test_version_in_a_checkout_takes_the_commit_from_git(built):
    environment = {key: value for key, value in os.environ.items() if key != "GIT_COMMIT"}
    result = run_cli(built, ["--version"], env=environment)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["git_commit"] == run(["git", "rev-parse", "HEAD"], cwd=REPO).stdout.strip()
