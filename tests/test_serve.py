"""`python -m housing_predictor serve`: the real server, as a subprocess on 127.0.0.1 (an ephemeral
port), over the models of a fresh `dvc repro` (the built_repo fixture), called over real HTTP.

Every endpoint; predictions bit for bit those of the CLI on the test split, in every request
format; every kind of bad request answered with its status and a one-line JSON error, never a 500;
SIGTERM during a burst of requests (none fails, readiness turns false, exit 0); bad settings and
bad models refused at start-up in one line.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from housing_predictor import linear

from conftest import REPO, run

pytestmark = pytest.mark.slow

FEATURES = list(linear.FEATURES)
MODELS = ["float", "q8", "q16"]
ROW = [8.3252, 41.0, 6.984126984126984, 1.0238095238095237, 322.0, 2.5555555555555554, 37.88, -122.23]
MAX_BODY_BYTES = 1_000_000  # the test split as CSV (~330 kB) or JSON fits; the 413 tests go over it
START_TIMEOUT = 60  # seconds for the server to print its address (a busy machine is slow)
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def server_environment() -> dict[str, str]:
    """This environment less what would change the server's settings or version."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SERVE_") and k not in ("WEB_CONCURRENCY", "IMAGE_VERSION")}


class Server:
    """A `serve` subprocess on 127.0.0.1, port 0 (the OS picks a free one, read from its log)."""

    def __init__(self, models_dir: Path, log_dir: Path, **env: str) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = log_dir / "stdout.log", log_dir / "stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "housing_predictor", "--models-dir", str(models_dir), "serve", "--host", "127.0.0.1"]
                + ["--port", "0"],
                cwd=REPO,
                env={**server_environment(), **env},
                stdout=out,
                stderr=err,
            )
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = LISTENING.search(self.stderr_path.read_text())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}:\n{self.stderr_path.read_text()}")
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"serve printed no address in {START_TIMEOUT} s:\n{self.stderr_path.read_text()}")

    def request(self, method: str, path: str, body: bytes | str | dict | list | None = None, headers: dict | None = None):
        """``(status, headers, parsed JSON or raw bytes)`` of one request on a new connection."""
        headers = dict(headers or {})
        if isinstance(body, dict | list):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.getheader("content-type", "").startswith("application/json"):
            return response.status, response.headers, json.loads(data)
        return response.status, response.headers, data

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def logs(self) -> tuple[str, str]:
        return self.stdout_path.read_text(), self.stderr_path.read_text()


@pytest.fixture(scope="module")
def models_dir(built_repo, tmp_path_factory) -> Path:
    """The pipeline's models: float, q8, q16 and the integer-only q8int."""
    models = tmp_path_factory.mktemp("serve") / "models"
    shutil.copytree(built_repo / "models", models)
    return models


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    started = Server(models_dir, tmp_path_factory.mktemp("serve-logs"), SERVE_MAX_BODY_BYTES=str(MAX_BODY_BYTES))
    yield started
    assert started.stop() == 0, started.logs()[1]


@pytest.fixture(scope="module")
def test_split(built_repo) -> np.ndarray:
    """data/test.csv's features, in feature order."""
    path = built_repo / "data" / "test.csv"
    header = path.read_text().split("\n", 1)[0].split(",")
    return np.loadtxt(path, delimiter=",", skiprows=1)[:, [header.index(name) for name in FEATURES]]


def features_csv(X: np.ndarray, columns: list[str] = FEATURES) -> str:
    """Rows of ``X`` (feature order) as CSV in ``columns`` order, numbers written with repr."""
    order = [FEATURES.index(name) for name in columns]
    return "\n".join([",".join(columns), *(",".join(map(repr, row)) for row in X[:, order].tolist())]) + "\n"


def cli_predictions(models_dir: Path, model: str, X: np.ndarray, columns: list[str] = FEATURES) -> np.ndarray:
    """`predict` of the CLI on rows ``X``, sent as CSV with ``columns`` in that order."""
    result = run(
        [sys.executable, "-m", "housing_predictor", "--models-dir", str(models_dir), "predict", "--model", model],
        cwd=REPO,
        input=features_csv(X, columns),
    )
    return np.array([float(line) for line in result.stdout.splitlines()[1:]])


# BLAS may round a row's dot product differently depending on where the row sits in a batch, so
# the CLI and the server are compared on the same batches: the split in requests of CHUNK_ROWS
# rows, each of which the CLI also reads as one block. Every row of the split is compared, exactly.
CHUNK_ROWS = 1000


@pytest.fixture(scope="module")
def cli_chunks(models_dir, test_split) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Per model: (rows, the CLI's predictions of them) for each chunk of the test split."""
    chunks = [test_split[i : i + CHUNK_ROWS] for i in range(0, len(test_split), CHUNK_ROWS)]
    return {model: [(X, cli_predictions(models_dir, model, X)) for X in chunks] for model in MODELS}


def v2_request(X: np.ndarray, datatype: str = "FP64") -> dict:
    return {"inputs": [{"name": "features", "shape": list(X.shape), "datatype": datatype, "data": X.ravel().tolist()}]}


# ---------------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------------


def test_health_and_server_metadata(server):
    assert server.request("GET", "/v2/health/live")[::2] == (200, {"live": True})
    assert server.request("GET", "/v2/health/ready")[::2] == (200, {"ready": True})
    status, _, metadata = server.request("GET", "/v2")
    assert status == 200 and metadata["name"] == "housing-mlops" and metadata["extensions"] == []
    assert metadata["version"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert server.request("GET", "/ping")[0] == 200


def test_model_metadata_and_readiness(server, models_dir):
    provenance = json.loads(
        run([sys.executable, "-m", "housing_predictor", "--models-dir", str(models_dir), "--version"], cwd=REPO).stdout
    )
    for model in [*MODELS, "q8int"]:
        status, _, metadata = server.request("GET", f"/v2/models/{model}")
        assert status == 200, metadata
        assert metadata["name"] == model
        [tensor] = metadata["inputs"]
        assert tensor["shape"] == [-1, 8] and tensor["datatype"] in ("FP32", "FP64")
        assert tensor["parameters"]["feature_order"].split(",") == FEATURES
        assert [output["shape"] for output in metadata["outputs"]] == [[-1]]
        version = metadata["versions"][0]
        if model in provenance["models"]:  # versioned by the hash of the params that built it
            assert version == provenance["models"][model]["params_sha256"]
        assert server.request("GET", f"/v2/models/{model}/ready")[::2] == (200, {"name": model, "ready": True})
        assert server.request("GET", f"/v2/models/{model}/versions/{version}")[2] == metadata
        assert server.request("GET", f"/v2/models/{model}/versions/{version}/ready")[0] == 200


@pytest.mark.parametrize("model", MODELS)
def test_v2_infer_gives_the_clis_predictions_bit_for_bit(server, cli_chunks, model):
    for X, expected in cli_chunks[model]:
        status, _, response = server.request("POST", f"/v2/models/{model}/infer", {"id": "split-1", **v2_request(X)})
        assert status == 200, response
        assert response["model_name"] == model and response["id"] == "split-1"
        [output] = response["outputs"]
        assert output["datatype"] == "FP64" and output["shape"] == [len(X)]
        assert np.array_equal(np.array(output["data"]), expected)  # exact: the same float64 bits
        # data nested as the shape is, and one [N] input per feature (any order): the same
        nested = {"inputs": [{"name": "x", "shape": [len(X), 8], "datatype": "FP64", "data": X.tolist()}]}
        assert server.request("POST", f"/v2/models/{model}/infer", nested)[2]["outputs"][0]["data"] == output["data"]
        columns = [
            {"name": name, "shape": [len(X)], "datatype": "FP64", "data": X[:, i].tolist()} for i, name in enumerate(FEATURES)
        ]
        by_column = server.request("POST", f"/v2/models/{model}/infer", {"inputs": columns[::-1]})[2]
        assert by_column["outputs"][0]["data"] == output["data"]


def test_invocations_give_the_clis_predictions_bit_for_bit(server, models_dir, cli_chunks):
    """CSV and each JSON form MLflow's clients send; /invocations predicts with the float model."""
    shuffled = FEATURES[::-1]
    reorder = [FEATURES.index(name) for name in shuffled]
    for X, expected in cli_chunks["float"]:
        status, _, response = server.request("POST", "/invocations", features_csv(X), {"Content-Type": "text/csv; charset=utf-8"})
        assert status == 200 and np.array_equal(np.array(response["predictions"]), expected)
        # A CSV's columns in another order: the CLI's reader, so the CLI's bits for that same file
        # (numpy's dot product of the reordered, column-major block may round a row differently).
        status, _, response = server.request("POST", "/invocations", features_csv(X, shuffled), {"Content-Type": "text/csv"})
        assert status == 200, response
        assert np.array_equal(np.array(response["predictions"]), cli_predictions(models_dir, "float", X, shuffled))
        bodies = {
            "dataframe_split": {"dataframe_split": {"columns": shuffled, "data": X[:, reorder].tolist()}},
            "dataframe_records": {"dataframe_records": [dict(zip(shuffled, row, strict=True)) for row in X[:, reorder].tolist()]},
            "instances": {"instances": X.tolist()},
            "inputs as rows": {"inputs": X.tolist()},
            "inputs as columns": {"inputs": {name: X[:, i].tolist() for i, name in enumerate(FEATURES)}},
        }
        for form, body in bodies.items():
            status, _, response = server.request("POST", "/invocations", body)
            assert status == 200, (form, response)
            assert np.array_equal(np.array(response["predictions"]), expected), form


def test_access_log_has_a_line_per_request(server):
    server.request("GET", "/v2/models/q16/ready?probe=access-log")
    stdout, _ = server.logs()
    assert re.search(r'127\.0\.0\.1:\d+ - "GET /v2/models/q16/ready\?probe=access-log HTTP/1\.1" 200', stdout), stdout[-2000:]


# ---------------------------------------------------------------------------------------------
# Bad requests: the protocol's status, {"error": "..."} naming the problem, never a 500
# ---------------------------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
HEADER = ",".join(FEATURES)
CSV_ROW = ",".join(map(repr, ROW))
INFER = "/v2/models/q8/infer"


def tensor(**fields) -> dict:
    return {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP64", "data": ROW, **fields}]}


def with_data(data: str) -> str:
    """A one-input V2 body whose data is the JSON text ``data``, as sent."""
    return json.dumps(tensor()).replace(json.dumps(ROW), data)


BAD_REQUESTS = {
    # (method, path, body, headers): (status, part of the message: the field's path and the rule)
    "bad JSON": (("POST", INFER, '{"inputs": [', JSON), (400, "not valid JSON")),
    "empty body": (("POST", INFER, "", JSON), (400, "request body is empty")),
    "not an object": (("POST", INFER, "[1, 2]", JSON), (400, "request body: Expected `object`, got `array`")),
    "empty inputs": (("POST", INFER, {"inputs": []}, {}), (400, "Expected `array` of length >= 1 - at `$.inputs`")),
    "missing data": (
        ("POST", INFER, {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP64"}]}, {}),
        (400, "Object missing required field `data` - at `$.inputs[0]`"),
    ),
    "a key with an escaped NUL": (
        ("POST", INFER, '{"a\\u0000b": 1, ' + json.dumps(tensor())[1:], JSON),
        (400, "request body: Object contains unknown field `a\x00b`"),
    ),
    "a repeated key": (
        ("POST", INFER, '{"id": "a", ' + json.dumps({"id": "b", **tensor()})[1:], JSON),
        (400, "repeats the key 'id'"),
    ),
    "a repeated data key": (
        ("POST", INFER, with_data("[1], " + '"data": ' + json.dumps(ROW)), JSON),
        (400, "repeats the key 'data'"),
    ),
    "wrong shape": (("POST", INFER, tensor(shape=[2, 4]), {}), (400, "has shape [2, 4]: expected [N, 8]")),
    "negative shape": (("POST", INFER, tensor(shape=[-1, 8]), {}), (400, "Expected `int` >= 0 - at `$.inputs[0].shape[0]`")),
    "a shape beyond 64 bits": (
        ("POST", INFER, tensor(shape=[2**64, 8]), {}),
        (400, "Expected `int` <= 9223372036854775807 - at `$.inputs[0].shape[0]`"),
    ),
    "wrong datatype": (
        ("POST", INFER, tensor(datatype="INT64"), {}),
        (400, "Invalid enum value 'INT64' - at `$.inputs[0].datatype`"),
    ),
    "data length is not the shape's": (
        ("POST", INFER, tensor(shape=[2, 8]), {}),
        (400, "$.inputs[0].data has 8 values in shape [8]: shape [2, 8] needs 16"),
    ),
    "ragged rows": (("POST", INFER, tensor(shape=[2, 8], data=[ROW, ROW[:7]]), {}), (400, "$.inputs[0].data is not rectangular")),
    "a string": (("POST", INFER, tensor(data=[*ROW[:7], "-122.23"]), {}), (400, "got `str` - at `$.inputs[0].data[7]`")),
    "a boolean": (("POST", INFER, tensor(data=[True, *ROW[1:]]), {}), (400, "got `bool` - at `$.inputs[0].data[0]`")),
    "NaN": (("POST", INFER, json.dumps(tensor(data=[float("nan"), *ROW[1:]])), JSON), (400, "holds NaN or infinity at byte")),
    "a number beyond float64": (
        ("POST", INFER, with_data(json.dumps(ROW).replace("322.0", "1e400")), JSON),
        (400, "Number out of range - at `$.inputs[0].data[4]`"),
    ),
    "data nested too deeply": (("POST", INFER, with_data("[" * 100_000 + "]" * 100_000), JSON), (400, "nested too deeply")),
    "a lone surrogate": (("POST", INFER, '{"id": "\\ud800", ' + json.dumps(tensor())[1:], JSON), (400, "not valid JSON")),
    "beyond FP32": (
        ("POST", INFER, tensor(datatype="FP32", data=[*ROW[:4], 1e39, *ROW[5:]]), {}),
        (400, "$.inputs[0].data holds a value beyond the FP32 range"),
    ),
    "overflowing prediction": (("POST", INFER, tensor(data=[1e308] * 8), {}), (400, "prediction overflows")),
    "a feature input missing": (
        (
            "POST",
            INFER,
            {
                "inputs": [
                    {**tensor()["inputs"][0], "name": n, "shape": [1], "data": [v]}
                    for n, v in zip(FEATURES[1:], ROW[1:], strict=True)
                ]
            },
            {},
        ),
        (400, "missing MedInc"),
    ),
    "unknown output": (("POST", INFER, {**tensor(), "outputs": [{"name": "proba"}]}, {}), (400, "at `$.outputs[0].name`")),
    "CSV: not a number": (
        ("POST", "/invocations", f"{HEADER}\n{CSV_ROW}\n{CSV_ROW.replace('41.0', 'forty-one')}\n", CSV),
        (400, "request body line 3, column HouseAge: 'forty-one' is not a number"),
    ),
    "CSV: ragged row": (("POST", "/invocations", f"{HEADER}\n{CSV_ROW},1\n", CSV), (400, "line 2 has 9 fields, expected 8")),
    "JSON: not one known key": (("POST", "/invocations", {"instances": [ROW], "inputs": [ROW]}, {}), (400, "exactly one of")),
    "JSON: an unknown key": (("POST", "/invocations", {"data": [ROW]}, {}), (400, "unknown field `data`")),
    "JSON: instances of 7": (("POST", "/invocations", {"instances": [ROW[:7]]}, {}), (400, "instances has shape [1, 7]")),
    "JSON: records missing a column": (
        ("POST", "/invocations", {"dataframe_records": [dict(zip(FEATURES[:7], ROW, strict=False))]}, {}),
        (400, "missing Longitude"),
    ),
    "JSON: split, a string": (
        ("POST", "/invocations", {"dataframe_split": {"columns": FEATURES, "data": [[*ROW[:7], "x"]]}}, {}),
        (400, "got `str` - at `$.dataframe_split.data[0][7]`"),
    ),
    "unknown model": (("POST", "/v2/models/q4/infer", tensor(), {}), (404, "model 'q4' does not exist")),
    "unknown version": (("GET", "/v2/models/q8/versions/0000/ready", None, {}), (404, "has no version '0000'")),
    "unknown path": (("GET", "/v1/models", None, {}), (404, "no such endpoint: /v1/models")),
    "GET infer": (("GET", INFER, None, {}), (405, "method GET is not allowed")),
    "CSV to infer": (("POST", INFER, f"{HEADER}\n{CSV_ROW}\n", CSV), (415, "content type 'text/csv' is not supported")),
    "no content type to invocations": (("POST", "/invocations", "x", {}), (415, "content type 'none' is not supported")),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_a_json_error(server, case):
    (method, path, body, headers), (status, message) = BAD_REQUESTS[case]
    got, response_headers, response = server.request(method, path, body, headers)
    assert got == status, (got, response)
    assert response_headers["content-type"] == "application/json"
    assert set(response) == {"error"} and message in response["error"], response["error"]
    assert "\n" not in response["error"] and "Traceback" not in response["error"]
    if status == 405:
        assert response_headers["allow"]  # the methods the path takes, as HTTP requires


def test_a_body_over_the_limit_is_413(server):
    """Declared over the limit: refused before it is sent; chunked (no Content-Length): refused
    once what arrived passes the limit."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "text/csv")
        connection.putheader("Content-Length", str(10 * MAX_BODY_BYTES))
        connection.endheaders(HEADER.encode())  # then wait: the answer comes without the rest
        response = connection.getresponse()
        assert response.status == 413 and f"of {10 * MAX_BODY_BYTES} bytes" in json.loads(response.read())["error"]
    finally:
        connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request("POST", "/invocations", body=iter([b"1" * 65536] * 16), headers=CSV, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413 and "over the limit" in json.loads(response.read())["error"]
    finally:
        connection.close()


def test_schemathesis_finds_nothing_from_the_served_openapi_document(server, tmp_path):
    """schemathesis (an API fuzzer no one here wrote) from the server's own document, derandomized
    and bounded: every check it has for a response passes, for positive and negative data."""
    checks = (
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection"
    )
    command = [str(Path(sys.executable).parent / "st"), "run", f"http://127.0.0.1:{server.port}/v2/docs/dataplane.json"]
    command += ["--checks", checks, "--generation-deterministic", "--max-examples", "30", "--workers", "1"]
    command += ["--phases", "examples,coverage,fuzzing", "--no-color"]  # (--max-time would fuzz until it is spent)
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout[-5000:]
    assert re.search(r"\d+ generated, \d+ passed", result.stdout), result.stdout[-2000:]


def test_no_request_caused_a_server_error(server):
    """Runs after the bad requests (file order): the access log has no 5xx, the log no traceback."""
    stdout, stderr = server.logs()
    assert '" 200' in stdout and not re.search(r'HTTP/1\.1" 5\d\d', stdout)
    assert "Traceback" not in stderr and "Exception" not in stderr


# ---------------------------------------------------------------------------------------------
# Shutdown, workers, start-up errors
# ---------------------------------------------------------------------------------------------


def test_sigterm_during_a_burst(models_dir, test_split, tmp_path):
    """SIGTERM while 8 clients send 1,000-row requests: readiness turns false at once, the server
    keeps serving for SERVE_DRAIN_SECONDS (the load balancer's cue to stop sending), every request
    gets its 200, and the process exits 0."""
    server = Server(models_dir, tmp_path, SERVE_DRAIN_SECONDS="5")
    body = json.dumps(v2_request(test_split[:1000]))
    statuses, failures, stop = [], [], threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                statuses.append(server.request("POST", "/v2/models/q8/infer", body, JSON)[0])
            except OSError as error:
                failures.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(statuses) < 40 and time.monotonic() < deadline and not failures:
        time.sleep(0.01)
    server.process.send_signal(signal.SIGTERM)
    try:
        ready_status = None
        while time.monotonic() < deadline:
            ready_status = server.request("GET", "/v2/health/ready")[0]
            if ready_status != 200:
                break
        stop.set()  # as a load balancer would: no new requests once readiness fails
        assert ready_status == 503
        assert server.request("GET", "/ping")[0] == 503
        assert server.request("GET", "/v2/health/live")[0] == 200  # alive, only not taking new work
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert server.process.wait(timeout=60) == 0, server.logs()[1]
    assert not failures, failures[:3]
    assert len(statuses) >= 40 and set(statuses) == {200}
    assert "SIGTERM: not ready" in server.logs()[1]


def test_sigterm_lets_in_flight_requests_complete(models_dir, test_split, tmp_path):
    """With no drain (the default), SIGTERM stops the server taking connections at once, yet the
    requests it is in the middle of reading complete with their 200; then it exits 0."""
    server = Server(models_dir, tmp_path)
    body = features_csv(test_split[:1000]).encode()
    half = len(body) // 2
    connections = []
    try:
        for _ in range(4):  # each request half sent: in flight when the signal arrives
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            connection.putrequest("POST", "/invocations")
            connection.putheader("Content-Type", "text/csv")
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body[:half])
            connections.append(connection)
        time.sleep(0.5)  # the server has read the halves
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while "Shutting down" not in server.logs()[1] and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(ConnectionRefusedError):  # no new connections any more
            server.request("GET", "/v2/health/live")
        for connection in connections:
            connection.send(body[half:])
            response = connection.getresponse()
            assert response.status == 200
            assert len(json.loads(response.read())["predictions"]) == 1000
    finally:
        for connection in connections:
            connection.close()
    assert server.process.wait(timeout=60) == 0, server.logs()[1]


def test_workers_from_the_environment(models_dir, tmp_path):
    server = Server(models_dir, tmp_path, WEB_CONCURRENCY="2", SERVE_ACCESS_LOG="0")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while server.logs()[1].count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.logs()[1].count("Application startup complete") == 2
        for _ in range(4):
            status, _, response = server.request("POST", INFER, tensor())
            assert status == 200 and len(response["outputs"][0]["data"]) == 1
    finally:
        assert server.stop() == 0
    assert server.logs()[0] == ""  # SERVE_ACCESS_LOG=0: no access log


def start_error(models_dir: Path, *args: str, **env: str) -> str:
    """The one-line error of a `serve` that must not start."""
    command = [sys.executable, "-m", "housing_predictor", "--models-dir", str(models_dir), "serve", "--port", "0", *args]
    result = subprocess.run(command, cwd=REPO, env={**server_environment(), **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_settings_are_one_line_and_exit_2(models_dir):
    assert "WEB_CONCURRENCY='many' is not an integer" in start_error(models_dir, WEB_CONCURRENCY="many")
    assert "SERVE_MAX_BODY_BYTES='0' must be a finite number >= 1" in start_error(models_dir, SERVE_MAX_BODY_BYTES="0")
    assert "SERVE_DRAIN_SECONDS='nan'" in start_error(models_dir, SERVE_DRAIN_SECONDS="nan")
    assert "SERVE_ACCESS_LOG='yes'" in start_error(models_dir, SERVE_ACCESS_LOG="yes")
    assert "invocations model 'q4' does not exist" in start_error(models_dir, "--invocations-model", "q4")
    assert "port 70000 is not a TCP port" in start_error(models_dir, "--port", "70000")


def test_missing_or_corrupted_model_is_one_line_and_exit_2(models_dir, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken)
    (broken / "q16.safetensors").unlink()
    assert "q16.safetensors is missing" in start_error(broken)
    shutil.copy2(models_dir / "q16.safetensors", broken / "q16.safetensors")
    data = bytearray((broken / "q8int.safetensors").read_bytes())
    data[-3] ^= 0x01
    (broken / "q8int.safetensors").write_bytes(bytes(data))
    assert "q8int.safetensors is corrupted" in start_error(broken)
    (broken / "q8int.safetensors").unlink()  # every model is served: none is optional
    assert "q8int.safetensors is missing" in start_error(broken, "--invocations-model", "q8int")


def test_a_kserve_v2_client_calls_every_model(server, models_dir, test_split):
    """Triton's own Python client, which speaks the Open Inference Protocol (V2) that KServe, Seldon
    MLServer and Triton share: health, metadata, and inference in FP64 and FP32 (JSON tensors; the
    binary-data extension is not offered, and the server says so in its metadata)."""
    import tritonclient.http as triton  # a test dependency (requirements.txt), not the image's

    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == []
    X = test_split[:200]
    for model in [*MODELS, "q8int"]:
        assert client.is_model_ready(model)
        metadata = client.get_model_metadata(model)
        [tensor], [output] = metadata["inputs"], metadata["outputs"]
        expected = cli_predictions(models_dir, model, X)
        for dtype, datatype in ((np.float64, "FP64"), (np.float32, "FP32")):
            features = triton.InferInput(tensor["name"], list(X.shape), datatype)
            features.set_data_from_numpy(X.astype(dtype), binary_data=False)
            requested = triton.InferRequestedOutput(output["name"], binary_data=False)
            result = client.infer(model, [features], outputs=[requested])
            predicted = result.as_numpy(output["name"])
            if datatype == "FP64":
                assert predicted.tolist() == expected.tolist()  # the CLI's bits
            else:  # the rows the CLI gets when given the float32 values
                assert predicted.tolist() == cli_predictions(models_dir, model, X.astype(np.float32).astype(np.float64)).tolist()
    client.close()
