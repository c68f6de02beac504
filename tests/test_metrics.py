"""`GET /metrics`: known requests sent to the real server (test_serve.py's, over the models of a
fresh `dvc repro`), the counts read back with prometheus-client's own parser, exact with one worker
and with two (whichever worker served each request); a killed worker's counts kept and its
in-flight gauge dropped; an operator's PROMETHEUS_MULTIPROC_DIR cleared of a previous run.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_serve import FEATURES, ROW, START_TIMEOUT, Server, models_dir  # noqa: F401 (models_dir: the fixture)

pytestmark = pytest.mark.slow

INFER = "/v2/models/{model}/infer"


def v2(rows: int) -> dict:
    return {"inputs": [{"name": "features", "shape": [rows, 8], "datatype": "FP64", "data": ROW * rows}]}


def csv(rows: int) -> str:
    return "\n".join([",".join(FEATURES), *[",".join(map(repr, ROW))] * rows]) + "\n"


# (method, path, body, headers) -> (status, model_name label, endpoint label, rows predicted)
KNOWN_REQUESTS = [
    *[(("POST", "/v2/models/float/infer", v2(1), None), (200, "float", INFER, 1))] * 3,
    *[(("POST", "/v2/models/q8/infer", v2(5), None), (200, "q8", INFER, 5))] * 2,
    (("POST", "/invocations", csv(4), {"Content-Type": "text/csv"}), (200, "float", "/invocations", 4)),
    (("POST", "/v2/models/q16/infer", v2(1000), None), (200, "q16", INFER, 1000)),
    (("GET", "/v2/models/q16", None, None), (200, "q16", "/v2/models/{model}", 0)),
    *[(("GET", "/v2/health/ready", None, None), (200, "", "/v2/health/ready", 0))] * 2,
    *[(("POST", "/v2/models/q8/infer", b"{not json", {"Content-Type": "application/json"}), (400, "q8", INFER, 0))] * 2,
    (("POST", "/v2/models/no-such-model/infer", v2(1), None), (404, "", INFER, 0)),  # never a label
    (("GET", "/v2/models/float/infer", None, None), (405, "float", INFER, 0)),
    (("POST", "/invocations", "x", {"Content-Type": "text/plain"}), (415, "float", "/invocations", 0)),
    *[(("GET", f"/no/such/path/{uuid.uuid4()}", None, None), (404, "", "other", 0))] * 2,
]


def start(models: Path, log_dir: Path, workers: int, **env: str) -> Server:
    """`serve` with ``workers`` workers, once every one of them is accepting (the supervisor prints
    the address as it binds the socket, before its workers listen)."""
    server = Server(models, log_dir, WEB_CONCURRENCY=str(workers), **env)
    wait_for(lambda: server.logs()[1].count("Application startup complete") == workers, f"{workers} workers started")
    return server


def wait_for(condition, what: str, timeout: float = START_TIMEOUT):
    """``condition()``'s first true value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def scrape(server: Server) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``GET /metrics``, parsed by prometheus-client: {(name, labels): value}."""
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain"), (status, body)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def samples(scraped: dict, name: str, **labels: str) -> dict[frozenset, float]:
    """The samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return {key: value for (sample, key), value in scraped.items() if sample == name and wanted <= key}


def worker_pids(server: Server) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker, also its child)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()}


def send_known_requests(server: Server) -> tuple[collections.Counter, collections.Counter, collections.Counter]:
    """KNOWN_REQUESTS, four at a time (so that both workers serve some), each checked: the requests
    by (model, endpoint, status), the requests that predicted and the rows, by model."""
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda request: server.request(*request[0])[0], KNOWN_REQUESTS))
    assert statuses == [expected[0] for _, expected in KNOWN_REQUESTS]
    requests, predicted, rows = collections.Counter(), collections.Counter(), collections.Counter()
    for _, (status, model, endpoint, n_rows) in KNOWN_REQUESTS:
        requests[(model, endpoint, str(status))] += 1
        if n_rows:
            predicted[model] += 1
            rows[model] += n_rows
    return requests, predicted, rows


def assert_counts(scraped: dict, requests: collections.Counter, predicted: collections.Counter, rows: collections.Counter):
    counted = {
        (dict(labels)["model_name"], dict(labels)["endpoint"], dict(labels)["status"]): value
        for labels, value in samples(scraped, "requests_total").items()
        if dict(labels)["endpoint"] != "/metrics"
    }
    assert counted == requests
    for model in ("float", "q8", "q16"):
        [count] = samples(scraped, "request_predict_seconds_count", model_name=model).values()
        [everything] = samples(scraped, "request_predict_seconds_bucket", model_name=model, le="+Inf").values()
        [seconds] = samples(scraped, "request_predict_seconds_sum", model_name=model).values()
        assert count == everything == predicted[model] and 0 < seconds < 60
        assert samples(scraped, "request_predict_rows_total", model_name=model) == {
            frozenset({("model_name", model)}): rows[model]
        }
    assert not samples(scraped, "request_predict_seconds_count", model_name="")  # no model, no prediction
    assert samples(scraped, "requests_in_flight") == {frozenset(): 1}  # the scrape itself


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_count_exactly_what_was_sent(models_dir, tmp_path, workers):  # noqa: F811
    # TMPDIR: where the supervisor makes its multiprocess directory, to see which workers wrote
    server = start(models_dir, tmp_path / "logs", workers, TMPDIR=str(tmp_path))
    try:
        expected = send_known_requests(server)
        if workers == 2:  # every worker served some: the counts are sums over both
            writers = {path.stem.split("_")[-1] for path in tmp_path.glob("prometheus-*/counter_*.db")}
            assert writers == set(map(str, worker_pids(server)))
        first = scrape(server)
        assert_counts(first, *expected)
        assert samples(first, "requests_total", endpoint="/metrics") == {}
        second = scrape(server)  # the first scrape is counted, nothing else changed
        assert samples(second, "requests_total", endpoint="/metrics") == {
            frozenset({("model_name", ""), ("endpoint", "/metrics"), ("status", "200")}): 1
        }
        assert_counts(second, *expected)
        # the process collector: of the process, or of each worker, by pid
        memory = samples(second, "process_resident_memory_bytes")
        pids = {dict(labels).get("pid") for labels in memory}
        assert pids == ({None} if workers == 1 else set(map(str, worker_pids(server))))
        assert all(value > 1 << 20 for value in memory.values())
    finally:
        assert server.stop() == 0, server.logs()[1]
    assert not list(tmp_path.glob("prometheus-*"))  # the supervisor's directory is removed at exit


def test_a_killed_worker_keeps_its_counts_and_leaves_the_in_flight_gauge(models_dir, tmp_path):  # noqa: F811
    server = start(models_dir, tmp_path, 2)
    held = []
    try:
        expected = send_known_requests(server)
        # two requests in flight (headers sent, a tenth of the body: the app waits for the rest)
        for _ in range(2):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            held[-1].sendall(b'POST /v2/models/float/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"inputs":')
        wait_for(lambda: samples(scrape(server), "requests_in_flight") == {frozenset(): 3}, "3 requests in flight")
        old = worker_pids(server)
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        # the supervisor replaces both (and marks them dead): only the scrape is in flight
        replaced = wait_for(lambda: len(worker_pids(server) - old) == 2 and scrape(server), "two new workers")
        wait_for(lambda: samples(scrape(server), "requests_in_flight") == {frozenset(): 1}, "in-flight gauge back at 1")
        assert_counts(replaced, *expected)  # the dead workers' counts stay
    finally:
        for connection in held:
            connection.close()
        assert server.stop() == 0, server.logs()[1]


def test_a_restart_on_the_operators_directory_starts_from_zero(models_dir, tmp_path):  # noqa: F811
    directory = tmp_path / "prometheus"
    for run in range(2):
        server = start(models_dir, tmp_path / f"run-{run}", 2, PROMETHEUS_MULTIPROC_DIR=str(directory))
        try:
            scraped = scrape(server)
            assert samples(scraped, "requests_total", endpoint=INFER) == {}  # nothing from the run before
            for _ in range(3):
                assert server.request("POST", "/v2/models/float/infer", v2(1))[0] == 200
            [count] = samples(scrape(server), "requests_total", endpoint=INFER).values()
            assert count == 3
        finally:
            assert server.stop() == 0, server.logs()[1]
