"""The predictor (housing_predictor/predict.py): its number reader, its CSV contract, its commands.

The CLI runs from the work tree on the artifacts of a fresh `dvc repro` (``built_repo``); the image
as a whole is tested in test_container.py.
"""

from __future__ import annotations

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
from hypothesis import example, given, settings
from hypothesis import strategies as st

from housing_predictor import predict
from housing_predictor.artifacts import load_model
from housing_predictor.errors import PipelineError
from housing_predictor.quantization import dequantize_model

from conftest import REPO, run

FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]
HEADER = ",".join(FEATURES)
ROW = "8.3252,41.0,6.984126984126984,1.0238095238095237,322.0,2.5555555555555554,37.88,-122.23"
PLAIN_DECIMAL = re.compile(r"-?(\d*)\.?(\d*)")


# --- the fast number reader: exactly Python's float, or "unread" -------------------------------


def read_numbers(texts: list[str], n_columns: int = 1) -> tuple[np.ndarray, set[int]]:
    rows = [",".join(texts[i : i + n_columns]) for i in range(0, len(texts), n_columns)]
    values, unread = predict.parse_block(("\n".join(rows) + "\n").encode(), n_columns)
    return values, set(unread.tolist())


def check_exact(texts: list[str], n_columns: int = 1) -> None:
    """Every field read is bit for bit Python's float of it; every plain decimal of up to 18 digits
    is read (not left to the slow path); fields left unread are the only ones float may reject."""
    values, unread = read_numbers(texts, n_columns)
    for index, text in enumerate(texts):
        match = PLAIN_DECIMAL.fullmatch(text)
        plain = match is not None and 1 <= len(match.group(1) + match.group(2)) <= predict.MAX_DIGITS
        if index in unread:
            assert not plain, f"{text!r} is a plain decimal but was left unread"
            continue
        expected = float(text)
        assert values[index] == expected and np.signbit(values[index]) == np.signbit(expected), (text, values[index], expected)


decimal_texts = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds(lambda x, d: f"{x:.{d}f}", st.floats(-1e12, 1e12), st.integers(0, 20)),
    st.integers(-(10**19), 10**19).map(str),
    st.builds(
        lambda sign, i, f: f"{sign}{i}.{f}",
        st.sampled_from(["", "-"]),
        st.text("0123456789", max_size=18),
        st.text("0123456789", max_size=21),
    ),
    st.text("0123456789.-+e ", max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(decimal_texts, min_size=1, max_size=60), st.sampled_from([1, 3, 8]))
@example(["9007199254740993", "9007199254740995", "9007199254740993.0", "900719925474099.35", "0.30000000000000004"], 1)
@example([".-0", "1", ".-5", "-.5", "2"], 1)  # a dot before the sign: not a number
@example([".-0", "-.5", "1."], 3)
@example(
    [
        "0",
        "-0",
        "-0.0",
        ".5",
        "5.",
        "-.5",
        "007.50",
        "999999999999999999",
        "1e5",
        "+3",
        " 1",
        "1_0",
        "",
        "-",
        ".",
        "1.2.3",
        "--1",
    ],
    1,
)
def test_reader_is_exactly_float(texts, n_columns):
    texts = texts + ["1"] * (-len(texts) % n_columns)
    check_exact(texts, n_columns)


def test_reader_on_halfway_cases():
    """Decimals exactly halfway between two doubles (ties go to the even one), and a hair either
    side: the cases a reader that is merely close rounds wrong."""
    rng = np.random.default_rng(7)
    texts = []
    for power, spacing in ((53, 2), (54, 4), (56, 16), (59, 128)):
        for k in rng.integers(0, 2**40, 200).tolist():
            tie = 2**power + spacing * k + spacing // 2
            for text in (str(tie - 1), str(tie), str(tie + 1)):
                cut = int(rng.integers(0, len(text)))  # the same digits with a dot: no longer ties
                texts += [text, f"{text[:cut]}.{text[cut:]}"]
    for low in rng.uniform(1, 1000, 500).tolist():  # 17-digit decimals around random doubles
        texts += [repr(low), f"{low:.15f}", f"{np.nextafter(low, 2000):.15f}"]
    check_exact([t for t in texts if len(t.replace(".", "")) <= predict.MAX_DIGITS])


def test_ragged_block_is_refused():
    assert predict.parse_block(b"1,2\n3\n", 2) is None
    assert predict.parse_block(b"1,2\n3,4,5\n", 2) is None
    assert predict.parse_block(b"1,2\n3,4\n1,2,3\n4\n", 2) is None  # field count right, lines wrong
    assert predict.parse_block(b"1,2\n\n", 2) is None


# --- the CSV reader ----------------------------------------------------------------------------


def read_all(text: bytes, columns=FEATURES, block_bytes: int = predict.BLOCK_BYTES) -> np.ndarray:
    return np.concatenate([rows for _, rows in predict.read_table(io.BytesIO(text), columns, "input", block_bytes)])


def test_columns_in_any_order():
    rows = [[float(i * 8 + j) + 0.25 for j in range(8)] for i in range(5)]
    order = [3, 7, 0, 5, 1, 6, 2, 4]
    text = ",".join(FEATURES[j] for j in order) + "\n" + "".join(",".join(repr(r[j]) for j in order) + "\n" for r in rows)
    np.testing.assert_array_equal(read_all(text.encode()), np.array(rows))


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1000])
def test_blocks_cut_anywhere_give_the_same_rows(block_bytes):
    rng = np.random.default_rng(block_bytes)
    X = rng.lognormal(0, 3, (300, 8)) * rng.choice([-1, 1], (300, 8))
    text = (HEADER + "\n" + "\n".join(",".join(map(repr, row)) for row in X.tolist()) + "\n").encode()
    np.testing.assert_array_equal(read_all(text, block_bytes=block_bytes), X)


def test_crlf_bom_quotes_and_no_final_newline():
    text = ('\ufeff"MedInc", HouseAge ,' + ",".join(FEATURES[2:]) + "\r\n" + ROW + "\r\n" + ROW).encode()
    expected = [float(v) for v in ROW.split(",")]
    np.testing.assert_array_equal(read_all(text), [expected, expected])


def test_odd_but_valid_numbers_take_the_slow_path():
    row = "1e3, 2.5 ,+3,-4E-2,5,6,7,8"
    np.testing.assert_array_equal(read_all(f"{HEADER}\n{row}\n".encode()), [[1000.0, 2.5, 3.0, -0.04, 5, 6, 7, 8]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "input is empty"),
        (b"\n", "input line 1 is blank: expected a CSV header"),
        (HEADER.encode() + b"\n", "input has a header but no data rows"),
        (b"MedInc,HouseAge\n1,2\n", "missing columns AveRooms, AveBedrms, Population, AveOccup, Latitude, Longitude"),
        ((HEADER + ",Colour,Size\n").encode(), "unknown columns 'Colour', 'Size'"),
        ((HEADER + ",MedInc\n").encode(), "repeated column MedInc"),
        ((HEADER + "\n" + ROW + "\n" + ROW + ",9\n").encode(), "input line 3 has 9 fields, expected 8"),
        ((HEADER + "\n" + ROW + "\n\n").encode(), "input line 3 is empty, expected 8 fields"),
        (
            (HEADER + "\n" + ROW.replace("41.0", "41.0.0") + "\n").encode(),
            "input line 2, column HouseAge: '41.0.0' is not a number",
        ),
        (
            (HEADER + "\n" + ROW.replace("41.0", "NaN") + "\n").encode(),
            "input line 2, column HouseAge: 'NaN' is not a finite number",
        ),
        ((HEADER + "\n" + ROW.replace("41.0", "inf") + "\n").encode(), "'inf' is not a finite number"),
        ((HEADER + "\n" + ROW.replace("41.0", "1_000") + "\n").encode(), "'1_000' is not a number"),
        ((HEADER + "\n" + ROW.replace("41.0", "") + "\n").encode(), "input line 2, column HouseAge is empty"),
        ((HEADER + "\n" + ROW.replace("41.0", "4-1") + "\n").encode(), "'4-1' is not a number"),
        (b"\xff\xfe" + HEADER.encode() + b"\n", "line 1 (the header) is not UTF-8 text"),
    ],
)
def test_bad_input_is_named(text, message):
    with pytest.raises(PipelineError, match=re.escape(message)):
        read_all(text)


def test_line_numbers_count_across_blocks():
    lines = [ROW] * 500
    lines[436] = ROW.replace("37.88", "x")
    text = (HEADER + "\n" + "\n".join(lines) + "\n").encode()
    with pytest.raises(PipelineError, match=r"input line 438, column Latitude: 'x' is not a number"):
        read_all(text, block_bytes=1000)
    lines[436] = ROW + ",1"
    with pytest.raises(PipelineError, match=r"input line 438 has 9 fields"):
        read_all(("\n".join([HEADER, *lines]) + "\n").encode(), block_bytes=1000)


def test_predictions_round_trip():
    values = np.random.default_rng(0).lognormal(0, 2, 1000)
    text = predict.format_predictions(values).decode()
    np.testing.assert_array_equal(np.array([float(v) for v in text.split()]), values)


# --- the commands, on real artifacts -----------------------------------------------------------


def cli(built_repo: Path, args: list[str], stdin: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m housing_predictor` from the work tree, on ``built_repo``'s artifacts."""
    paths = ["--models-dir", str(built_repo / "models"), "--metrics", str(built_repo / "metrics" / "evaluate.json")]
    return subprocess.run(
        [sys.executable, "-m", "housing_predictor", *paths, *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        **kwargs,
    )


def test_predict_matches_the_models_on_the_test_split(built_repo):
    table = np.loadtxt(built_repo / "data" / "test.csv", delimiter=",", skiprows=1)
    features_text = HEADER + "\n" + "\n".join(",".join(map(repr, row)) for row in table[:, :8].tolist()) + "\n"
    for name in ("float", "q8", "q16"):
        result = cli(built_repo, ["predict", "--model", name], stdin=features_text)
        assert result.returncode == 0, result.stderr
        saved = load_model(built_repo / "models" / f"{name}.safetensors")
        expected = dequantize_model(saved.tensors, saved.scheme).predict(table[:, :8])
        got = np.array([float(v) for v in result.stdout.split()[1:]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_output_file_is_replaced_only_on_success(built_repo, tmp_path):
    out = tmp_path / "predictions.csv"
    out.write_text("keep me\n")
    bad = HEADER + "\n" + (ROW + "\n") * 100_000 + ROW.replace("322.0", "oops") + "\n"  # fails after many blocks
    result = cli(built_repo, ["predict", "--model", "q8", "--output", str(out)], stdin=bad)
    assert result.returncode == 2 and "line 100002, column Population" in result.stderr
    assert out.read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no temp file left
    result = cli(built_repo, ["predict", "--model", "q8", "--output", str(out)], stdin=HEADER + "\n" + ROW + "\n")
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[0] == "prediction" and len(out.read_text().splitlines()) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]


def test_output_that_cannot_be_written(built_repo, tmp_path):
    (tmp_path / "taken").mkdir()
    for target, reason in (
        (tmp_path / "taken", "Is a directory"),
        (tmp_path / "no" / "such" / "dir.csv", "No such file or directory"),
    ):
        result = cli(built_repo, ["predict", "--model", "q8", "--output", str(target)], stdin=HEADER + "\n" + ROW + "\n")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip() == f"error: output {target} cannot be written: {reason}"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and not any((tmp_path / "taken").iterdir())


def test_missing_input_file(built_repo, tmp_path):
    result = cli(built_repo, ["predict", "--model", "q8", "--input", str(tmp_path / "nope.csv")])
    assert result.returncode == 2 and result.stderr.strip().endswith("cannot be read: No such file or directory")


def test_usage_errors_are_one_line(built_repo):
    for args, message in (
        (["predict", "--model", "q4"], "invalid choice: 'q4'"),
        (["predict"], "--model"),
        ([], "a command is required"),
    ):
        result = cli(built_repo, args)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


def test_closed_stdout_ends_quietly(built_repo, tmp_path):
    (tmp_path / "in.csv").write_text(HEADER + "\n" + (ROW + "\n") * 200_000)
    paths = ["--models-dir", str(built_repo / "models")]
    command = [sys.executable, "-m", "housing_predictor", *paths, "predict", "--model", "q8", "--input", str(tmp_path / "in.csv")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline() == b"prediction\n"
    process.stdout.close()  # like `| head -1`
    assert "Traceback" not in process.stderr.read().decode()
    assert process.wait() in (0, 1)


def test_selfcheck_passes_on_the_pipelines_artifacts(built_repo):
    result = cli(built_repo, ["selfcheck"])
    assert result.returncode == 0, result.stderr
    assert "selfcheck passed" in result.stdout


@pytest.fixture
def artifacts_copy(built_repo, tmp_path) -> Path:
    shutil.copytree(built_repo / "models", tmp_path / "models")
    shutil.copytree(built_repo / "metrics", tmp_path / "metrics")
    return tmp_path


def selfcheck_copy(copy: Path) -> subprocess.CompletedProcess:
    return cli(copy, ["selfcheck"])


def test_selfcheck_fails_on_a_wrong_expected_prediction(artifacts_copy):
    sample = artifacts_copy / "models" / "selfcheck.csv"
    lines = sample.read_text().splitlines()
    values = lines[5].split(",")
    values[-2] = repr(float(values[-2]) + 1e-7)  # q8's expected prediction, off by 1e-7
    lines[5] = ",".join(values)
    sample.write_text("\n".join(lines) + "\n")
    result = selfcheck_copy(artifacts_copy)
    assert result.returncode == 2 and "selfcheck failed: q8 predictions differ" in result.stderr, result.stderr


def test_selfcheck_fails_when_metrics_disagree(artifacts_copy):
    path = artifacts_copy / "metrics" / "evaluate.json"
    metrics = json.loads(path.read_text())
    metrics["q16"]["max_deviation_usd"] *= 1.01
    path.write_text(json.dumps(metrics))
    result = selfcheck_copy(artifacts_copy)
    assert result.returncode == 2 and "q16 deviates from float" in result.stderr, result.stderr


def test_selfcheck_without_its_sample(artifacts_copy):
    (artifacts_copy / "models" / "selfcheck.csv").unlink()
    result = selfcheck_copy(artifacts_copy)
    assert result.returncode == 2 and "selfcheck.csv is missing" in result.stderr


def test_version_is_provenance(built_repo):
    result = cli(built_repo, ["--version"], env={**os.environ, "GIT_COMMIT": "abc123"})
    assert result.returncode == 0, result.stderr
    provenance = json.loads(result.stdout)
    assert provenance["git_commit"] == "abc123"
    assert provenance["metrics"] == json.loads((built_repo / "metrics" / "evaluate.json").read_text())
    for name, entry in provenance["models"].items():
        params = load_model(built_repo / "models" / f"{name}.safetensors").params
        assert entry["params"] == params
        assert (
            entry["params_sha256"]
            == hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        )
    assert provenance["models"]["q8"]["params"]["quantize"] != provenance["models"]["q16"]["params"]["quantize"]


def test_help(built_repo):
    for args in (["--help"], ["predict", "--help"], ["selfcheck", "--help"]):
        result = run([sys.executable, "-m", "housing_predictor", *args], cwd=REPO)
        assert "usage: python -m housing_predictor" in result.stdout
