"""Hostile connections against `serve` with its defaults as shipped, on 127.0.0.1.

Real sockets, as an attacker would open them: idle and slowloris connections beyond the connection
limit, a header flood, bodies that never complete, a 40,000-name CSV header, a request the HTTP
parser refuses, clients that hang up mid-body; and a bounded mixed burst at concurrency 32 with 100 slow
clients open. Each asserts what a good client gets (its answer, within a second where the target
says so), what the attacker gets (its 4xx, or a closed connection within the timeout), that no
request gets a 5xx, that the log holds no traceback, and that memory stays bounded.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import test_serve
from test_serve import ROW, Server, features_csv, v2_request

from housing_predictor.server import settings as server_settings

pytestmark = pytest.mark.slow
models_dir, test_split = test_serve.models_dir, test_serve.test_split  # its fixtures: the models of one `dvc repro`

INFER = "/v2/models/float/infer"
GOOD = json.dumps(v2_request(np.array([ROW])))
HEADER_TIMEOUT = server_settings.DEFAULT_HEADER_TIMEOUT
BODY_TIMEOUT = server_settings.DEFAULT_BODY_TIMEOUT
SLACK = 3.0  # seconds past a timeout for the server to act (a busy machine)


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    """`serve` with nothing set but its address: the defaults as shipped."""
    started = Server(models_dir, tmp_path_factory.mktemp("hostile-logs"))
    yield started
    assert started.stop() == 0, started.logs()[1]


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def read_response(sock: socket.socket, timeout: float) -> tuple[int | None, bytes]:
    """``(status, body)`` of the one response the server sends before closing, or (None, b"") if it
    closes without a word; waits at most ``timeout`` seconds."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    if not data:
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def good_request(port: int, timeout: float = 30) -> tuple[int, dict, float]:
    """``(status, body, seconds)`` of one single-row V2 request on a new connection."""
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", INFER, GOOD, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read()), time.monotonic() - start
    finally:
        connection.close()


def assert_clean_log(server: Server) -> None:
    stdout, stderr = server.logs()
    assert not re.search(r'HTTP/1\.1" 5\d\d', stdout), [line for line in stdout.splitlines() if '" 5' in line][:5]
    assert "Traceback" not in stderr and "Exception" not in stderr and "ClientDisconnect" not in stderr, stderr[-3000:]


# ---------------------------------------------------------------------------------------------
# 1. Connections that cannot starve the server
# ---------------------------------------------------------------------------------------------


def test_idle_and_slowloris_sockets_do_not_starve_good_requests(server):
    """256 idle sockets (the connection limit) and 300 slowloris sockets (headers a byte a
    second), all open: good requests are answered within a second each, because a new connection
    closes the one that has waited longest for its headers."""
    limit = server_settings.DEFAULT_LIMIT_CONCURRENCY
    idle = [connect(server.port) for _ in range(limit)]
    slow = [connect(server.port) for _ in range(300)]
    stop = threading.Event()

    def drip() -> None:  # one byte a second on every slowloris socket, for as long as the test runs
        line = b"POST /v2/models/float/infer HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        for i in range(len(line)):
            for sock in slow:
                try:
                    sock.send(line[i : i + 1])
                except OSError:
                    pass  # closed by the server: as intended
            if stop.wait(1.0):
                return

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        time.sleep(2)  # all connected and dripping
        answers = [good_request(server.port) for _ in range(15)]
        assert [status for status, _, _ in answers] == [200] * 15, answers
        slowest = max(seconds for _, _, seconds in answers)
        assert slowest < 1.0, f"a good request took {slowest:.2f} s with 556 hostile sockets open"
    finally:
        stop.set()
        dripper.join(timeout=30)
        for sock in idle + slow:
            sock.close()
    assert good_request(server.port)[0] == 200


def responses_in_parallel(sockets: dict[str, socket.socket]) -> dict[str, tuple]:
    """Each socket's (status, body) as read_response gives it, and when it came, read side by
    side (each waits out the server's timeout); the sockets are closed after."""
    results = {}
    threads = [
        threading.Thread(
            target=lambda name=name, sock=sock: results.__setitem__(name, (*read_response(sock, 60), time.monotonic()))
        )
        for name, sock in sockets.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    for sock in sockets.values():
        sock.close()
    return results


def test_idle_and_partial_header_connections_are_closed_within_the_header_timeout(server):
    idle, partial = connect(server.port), connect(server.port)
    partial.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    start = time.monotonic()
    results = responses_in_parallel({"idle": idle, "partial": partial})
    assert results["idle"][0] is None  # closed without a word: it asked nothing
    assert results["partial"][0] == 408 and "headers did not arrive" in json.loads(results["partial"][1])["error"]
    for name in results:
        assert HEADER_TIMEOUT - 0.5 <= results[name][2] - start <= HEADER_TIMEOUT + SLACK, (name, results[name][2] - start)


def test_incomplete_bodies_get_408_within_the_body_timeout(server):
    """Content-Length 1000 with 10 bytes sent, and a chunk that lies about its size: 408 and close."""
    short = connect(server.port)
    short.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n0123456789")
    lying = connect(server.port)
    lying.sendall(b"POST /v2/models/q8/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    lying.sendall(b"Transfer-Encoding: chunked\r\n\r\n100\r\n" + b"[" * 10)
    start = time.monotonic()
    results = responses_in_parallel({"short": short, "lying": lying})
    for name, (status, body, when) in results.items():
        assert status == 408 and "body did not arrive" in json.loads(body)["error"], (name, status, body)
        assert BODY_TIMEOUT - 0.5 <= when - start <= BODY_TIMEOUT + SLACK, (name, when - start)


# ---------------------------------------------------------------------------------------------
# 2-3. Header floods, odd bodies, bounded memory
# ---------------------------------------------------------------------------------------------


def test_a_header_flood_is_431_and_costs_no_memory(server):
    """A 16 MiB header: 431 once the limit is passed, the rest never parsed; peak memory unmoved.
    A request line over the limit: 414."""
    peak = rss_kib(server.process.pid, "VmHWM")
    sock = connect(server.port)
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Flood: ")
    try:
        for _ in range(16 * 16):  # 16 MiB, 64 KiB at a time, until the server closes
            sock.sendall(b"a" * 65536)
    except OSError:
        pass  # the server answered and closed: as intended
    status, body = read_response(sock, 30)
    sock.close()
    limit = server_settings.DEFAULT_MAX_HEADER_BYTES
    assert status == 431 and f"over the limit of {limit} bytes" in json.loads(body)["error"]
    assert rss_kib(server.process.pid, "VmHWM") - peak < 16 * 1024  # KiB: not the flood's 16 MiB
    # headers just under the limit are fine; a request line over it alone is a 414
    status, _, response = server.request("GET", "/v2/health/live", headers={"X-Big": "b" * (limit - 2000)})
    assert status == 200 and response == {"live": True}
    status, _, response = server.request("GET", "/v2/health/live?" + "q" * 100_000)
    assert status == 414 and "request's line (its URL) is over the limit" in response["error"]


def test_what_the_http_parser_refuses_is_a_json_400(server):
    sock = connect(server.port)
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n")
    status, body = read_response(sock, 30)
    sock.close()
    assert status == 400 and "not valid HTTP/1.1" in json.loads(body)["error"]


def test_a_4xx_keeps_the_connection_usable(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for body, expected in (("{bad", 400), ("[" * 40 + "]" * 40, 400), (GOOD, 200), ('{"id": "\\ud800", "inputs": []}', 400)):
            connection.request("POST", INFER, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == expected and response.getheader("connection") != "close"
            assert ("error" in json.loads(response.read())) == (expected != 200)
        connection.request("GET", "/v2/health/live")  # the same connection, still open
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_a_40000_name_csv_header_is_refused_in_linear_time(server):
    """The duplicate-column check is linear: the worker answers at once, the health probe with it."""
    header = ",".join(f"column{i}" for i in range(40_000))
    done = {}

    def send() -> None:
        done["response"] = server.request(
            "POST", "/invocations", f"{header}\n" + ",".join(["1"] * 40_000) + "\n", {"Content-Type": "text/csv"}
        )

    sender = threading.Thread(target=send)
    sender.start()
    probes = []
    while sender.is_alive() and len(probes) < 100:
        start = time.monotonic()
        assert server.request("GET", "/v2/health/ready")[0] == 200
        probes.append(time.monotonic() - start)
    sender.join(timeout=60)
    status, _, response = done["response"]
    assert status == 400 and "unknown columns 'column0'" in response["error"] and "missing column" in response["error"]
    assert max(probes, default=0) < 1.0, probes


def reset_peak_rss(pid: int) -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux: clear_refs 5); return it."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_kib(pid, "VmHWM")


@pytest.mark.parametrize("form", ["V2", "CSV"])
def test_a_maximum_size_body_costs_at_most_4x_its_size(server, test_split, form):
    """A V2 request and a CSV request of nearly 8 MiB (the default body limit), each the first of
    its size: peak memory grows by at most 4x the body (a V2 tensor's flat data read in blocks
    straight into numpy, the CSV by numpy's reader in blocks; docs/serving.md has the figures)."""
    limit = server_settings.DEFAULT_MAX_BODY_BYTES
    encode = (lambda X: json.dumps(v2_request(X))) if form == "V2" else features_csv
    per_row = len(encode(test_split[:1000])) / 1000
    X = np.resize(test_split, (int((limit - 100_000) / per_row), 8))
    body = encode(X)
    assert limit - 300_000 < len(body) <= limit
    path, kind = (INFER, "application/json") if form == "V2" else ("/invocations", "text/csv")
    before = reset_peak_rss(server.process.pid)
    status, _, response = server.request("POST", path, body, {"Content-Type": kind})
    grown = rss_kib(server.process.pid, "VmHWM") - before
    assert status == 200
    print(f"\n{form}: {len(body) / 2**20:.1f} MiB body, peak RSS +{grown / 1024:.1f} MiB ({grown * 1024 / len(body):.2f}x)")
    assert grown * 1024 <= 4 * len(body)


def test_clients_that_hang_up_mid_body_leave_no_traceback(server):
    for _ in range(20):
        sock = connect(server.port)
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\n")
        sock.sendall(b"MedInc," * 1000)
        sock.close()
    assert good_request(server.port)[0] == 200
    time.sleep(0.5)
    assert_clean_log(server)


# ---------------------------------------------------------------------------------------------
# 7. Load: a bounded burst at concurrency 32, 10% hostile, 100 slow clients open
# ---------------------------------------------------------------------------------------------

HOSTILE = [
    # (body, content type, expected status); None: the server closes the connection
    ("{bad json", "application/json", 400),
    ("[" * 50 + "]" * 50, "application/json", 400),
    ('{"id": "\\ud800", "inputs": []}', "application/json", 400),
    (json.dumps({"instances": json.loads("[" * 40 + "1" + "]" * 40)}), "application/json", 400),
    ("MedInc\n1\n", "text/csv", 400),
    ("x", "application/x-www-form-urlencoded", 415),
]


def test_a_mixed_burst_with_slow_clients_loses_no_good_request(server, test_split):
    rng = random.Random(20)
    X = test_split[:100]
    good_body = json.dumps(v2_request(X))
    expected = server.request("POST", INFER, good_body)[2]["outputs"][0]["data"]
    requests_per_client = 150
    baseline = rss_kib(server.process.pid)
    results: list[tuple[str, int | None]] = []
    lost: list[str] = []
    stop = threading.Event()
    slow = [connect(server.port) for _ in range(100)]

    def slow_clients() -> None:  # 100 connections dripping headers; reopened when the server sheds them
        while not stop.wait(0.5):
            for i, sock in enumerate(slow):
                try:
                    sock.send(b"X")
                except OSError:
                    sock.close()
                    try:
                        slow[i] = connect(server.port)
                    except OSError:
                        pass

    def client(seed: int) -> None:
        local = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for _ in range(requests_per_client):
            hostile = local.random() < 0.1
            body, kind, status = local.choice(HOSTILE) if hostile else (good_body, "application/json", 200)
            path = "/invocations" if "instances" in body[:20] or kind == "text/csv" else INFER
            try:
                connection.request("POST", path, body, {"Content-Type": kind})
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                lost.append(f"{'hostile' if hostile else 'good'}: {error!r}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                continue
            results.append(("hostile" if hostile else "good", response.status))
            if not hostile and (response.status != 200 or json.loads(data)["outputs"][0]["data"] != expected):
                lost.append(f"good: {response.status} {data[:200]!r}")
            if hostile and response.status != status:
                lost.append(f"hostile {body[:30]!r}: {response.status}, expected {status}")
        connection.close()

    dripper = threading.Thread(target=slow_clients)
    dripper.start()
    threads = [threading.Thread(target=client, args=(rng.random(),)) for _ in range(32)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        stop.set()
        dripper.join(timeout=30)
        for sock in slow:
            sock.close()
    assert not any(thread.is_alive() for thread in threads)
    assert not lost, lost[:5]
    good = sum(kind == "good" for kind, _ in results)
    assert len(results) == 32 * requests_per_client and good > 0.8 * len(results)
    assert not [status for _, status in results if status >= 500]
    time.sleep(1)
    after = rss_kib(server.process.pid)
    print(f"\n{len(results)} requests ({good} good): RSS {baseline / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")
    assert after - baseline < 20 * 1024  # KiB: memory back to its level (no growth per request)
    assert_clean_log(server)
