"""The predictor (housing_predictor/cli.py) on the artifacts the stages built: its CSV contract,
deterministic predictions, its commands (hostile input and outputs: test_predict_hostile.py).
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
@given(
    rows=st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=8, max_size=8), min_size=1, max_size=40),
    block_chars=st.sampled_from([1, 7, 64, 1000, csv_io.BLOCK_CHARS]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_reader_reads_repr_exactly_wherever_blocks_cut(rows, block_chars, newline):
    """Every finite float64, written with repr as the pipeline writes it, reads back bit for bit,
    whatever the line ending and wherever the reader's blocks cut the text."""
    text = newline.join([HEADER, *(",".join(map(repr, row)) for row in rows)]) + newline
    assert read_all(text.encode(), block_chars=block_chars).tobytes() == np.array(rows).tobytes()


def quote_all(rows: list[list[float]]) -> bytes:
    """What Python's csv writer (and tools like it) write with every field quoted."""
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL).writerows([FEATURES, *rows])
    return out.getvalue().encode()


ROWS = [[float(v) for v in ROW.split(",")], [1.5, 2.0, 3.25, 1e-3, 1000.0, 2.5, 34.0, -118.5]]
LINES = [",".join(map(repr, row)) for row in ROWS]
CSV_AS_TOOLS_WRITE_IT = {
    "every field quoted (csv.QUOTE_ALL)": quote_all(ROWS),
    "R's write.csv (quoted names, CRLF)": "\r\n".join(['"' + '","'.join(FEATURES) + '"', *LINES, ""]).encode(),
    "BOM, no final newline": "\n".join(["\ufeff" + HEADER, *LINES]).encode(),
    "blank lines anywhere": "\n".join(["", "", HEADER, "", LINES[0], " \t", "\r", LINES[1], "", "", ""]).encode(),
    "scientific notation and spaces": "\n".join(
        [" " + " , ".join(FEATURES) + " ", ",".join(f" {v:e} " for v in ROWS[0]), ",".join(f"{v:E}" for v in ROWS[1]), ""]
    ).encode(),
    "columns in another order": "\n".join([",".join(FEATURES[::-1]), *(",".join(map(repr, r[::-1])) for r in ROWS), ""]).encode(),
}


@pytest.mark.parametrize("text", CSV_AS_TOOLS_WRITE_IT.values(), ids=CSV_AS_TOOLS_WRITE_IT.keys())
def test_csv_as_tools_write_it(text):
    got = read_all(text)
    np.testing.assert_array_equal(got[:, 0], [ROWS[0][0], ROWS[1][0]])
    np.testing.assert_allclose(got, ROWS, rtol=1e-6)  # "%e" keeps 7 digits


def house_age(value: str) -> bytes:
    """A header and one row whose HouseAge is ``value``."""
    return f"{HEADER}\n{ROW.replace('41.0', value)}\n".encode()


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
        (house_age("41.0.0"), "input line 2, column HouseAge: '41.0.0' is not a number"),
        (house_age('"41.0"x'), "input line 2, column HouseAge: '41.0x' is not a number"),
        (house_age("NaN"), "input line 2, column HouseAge: 'NaN' is not a finite number"),
        (house_age("-inf"), "'-inf' is not a finite number"),
        (house_age("1e999"), "'1e999' is not a finite number"),
        (house_age("1_000"), "'1_000' is not a number"),
        (house_age(""), "input line 2, column HouseAge is empty"),
        (house_age("4-1"), "'4-1' is not a number"),
        (house_age("4\x001"), "input line 2 is not UTF-8 text"),
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


FEATURE_RANGES = [(0.4, 15.0), (1, 52), (0.8, 150), (0.3, 35), (3, 36_000), (0.7, 1250), (32.5, 42), (-124.4, -114.3)]
feature_rows = st.lists(st.tuples(*(st.floats(low, high) for low, high in FEATURE_RANGES)), min_size=1, max_size=200)


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


def q8_sample_off_by_1e_7(copy: Path) -> None:
    sample = copy / "models" / "selfcheck.csv"
    lines = sample.read_text().splitlines()
    values, q8 = lines[5].split(","), lines[0].split(",").index("q8")
    values[q8] = repr(float(values[q8]) + 1e-7)  # q8's expected prediction
    lines[5] = ",".join(values)
    sample.write_text("\n".join(lines) + "\n")


def q16_deviation_off_by_1_percent(copy: Path) -> None:
    path = copy / paths.metrics_file("q16")
    metrics = json.loads(path.read_text())
    metrics["max_deviation_usd"] *= 1.01
    path.write_text(json.dumps(metrics))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (q8_sample_off_by_1e_7, "selfcheck failed: q8 predictions differ"),
        (q16_deviation_off_by_1_percent, "q16 deviates from float"),
        (lambda copy: (copy / "models" / "selfcheck.csv").unlink(), "selfcheck.csv is missing"),
    ],
    ids=["wrong expected prediction", "metrics disagree", "no sample"],
)
def test_selfcheck_fails_on_artifacts_that_disagree(built, tmp_path, change, message):
    for folder in ("models", "metrics"):
        shutil.copytree(built / folder, tmp_path / folder)
    change(tmp_path)
    result = run_cli(tmp_path, ["selfcheck"])
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_version_is_provenance(built):
    """Each model's params and their hash, the metrics, and the commit: GIT_COMMIT, else git's HEAD."""
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
    result = run_cli(built, ["--version"], env={key: value for key, value in os.environ.items() if key != "GIT_COMMIT"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["git_commit"] == run(["git", "rev-parse", "HEAD"], cwd=REPO).stdout.strip()
