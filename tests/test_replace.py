"""A replica of `serve` replaced under load behind a real load balancer: no request lost.

HAProxy (Debian's) on docs/haproxy.cfg, on 127.0.0.1, health-checking /v2/health/ready as a
Kubernetes Service's endpoints follow readiness. Two replicas with the server's defaults under 16
keep-alive clients sending V2 requests; a third started and put in the config's free slot (HAProxy's
runtime API), then the first sent SIGTERM, as a rolling update does. Every request gets a 200 with
its predictions (none fails, none is reset), the stopped replica exits 0, the new one takes
requests; the request count and the p99 latency during the swap are printed. Twice: through the
config as committed (`mode http`: HAProxy's own pooled connections, and its retries), and through
the same file made to balance as a Service's kube-proxy does (connections, no retries), where only
the server's drain protects the clients.

With CI=true a missing `haproxy` is a failure; elsewhere the test skips, saying why
(scripts/install_test_tools.sh installs it).
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import test_serve
from test_serve import Server, v2_request

from housing_predictor.models import load_models

from conftest import REPO

pytestmark = pytest.mark.slow
models_dir, test_split = test_serve.models_dir, test_serve.test_split  # its fixtures: the models of one `dvc repro`

HAPROXY_CONFIG = REPO / "docs" / "haproxy.cfg"
CLIENTS = 16
MODEL = "q8"
WARM_UP_SECONDS = 1.0  # of load before the SIGTERM, and again once the old replica is gone
TIMEOUT = 30  # seconds for any one wait: HAProxy's checks, a replica's exit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def like_a_kubernetes_service(config: str) -> str:
    """The config balancing as a Service's kube-proxy does: connections (mode tcp), each staying on
    the replica it reached; a replica that refuses a new connection fails it (no retries)."""
    for line, replacement in (("    mode http\n", "    mode tcp\n"), ("    retries 3 ", "    retries 0 ")):
        assert line in config, line
        config = config.replace(line, replacement)
    return config


BALANCERS = {"haproxy.cfg as committed": lambda config: config, "like a Kubernetes Service (L4)": like_a_kubernetes_service}


class HAProxy:
    """HAProxy on docs/haproxy.cfg as ``balancer`` changes it, with a runtime API socket in ``folder``."""

    def __init__(self, folder: Path, balancer: str, replicas: list[str]) -> None:
        config_path = folder / "haproxy.cfg"
        config_path.write_text(BALANCERS[balancer](HAPROXY_CONFIG.read_text()))
        self.socket_path = folder / "haproxy.sock"
        (folder / "runtime-api.cfg").write_text(f"global\n    stats socket {self.socket_path} level admin\n")
        self.port = free_port()
        env = {"LISTEN": f"127.0.0.1:{self.port}", **{f"REPLICA{i}": address for i, address in enumerate(replicas, 1)}}
        self.log = folder / "haproxy.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(config_path), "-f", str(folder / "runtime-api.cfg")],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def command(self, line: str) -> str:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert self.process.poll() is None, f"haproxy exited {self.process.returncode}:\n{self.log.read_text()}"
            try:
                with socket.socket(socket.AF_UNIX) as runtime_api:
                    runtime_api.settimeout(TIMEOUT)
                    runtime_api.connect(str(self.socket_path))
                    runtime_api.sendall(line.encode() + b"\n")
                    return b"".join(iter(lambda: runtime_api.recv(65536), b"")).decode()
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def servers(self) -> dict[str, dict]:
        """Each server's row of `show stat`: its status (UP, DOWN...), sessions (stot), retries (wretr)."""
        lines = self.command("show stat").lstrip("# ").splitlines()
        return {row["svname"]: row for row in csv.DictReader(lines) if row["pxname"] == "replicas" and row["svname"] != "BACKEND"}

    def wait_for(self, statuses: dict[str, str]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while {name: self.servers()[name]["status"] for name in statuses} != statuses:
            assert time.monotonic() < deadline, f"haproxy's servers are not {statuses}: {self.servers()}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=TIMEOUT)


class Load:
    """CLIENTS threads, each a keep-alive connection through the balancer sending one V2 request of
    its own size again and again, checking each answer: (start, latency) of every good one, and
    what went wrong with every other."""

    def __init__(self, port: int, X: np.ndarray, expected: np.ndarray) -> None:
        self.port, self.stop = port, threading.Event()
        self.timings: list[tuple[float, float]] = []
        self.failures: list[str] = []
        sizes = [1 + 4 * i for i in range(CLIENTS)]  # 1 to 61 rows: every request fits HAProxy's buffer
        self.threads = [threading.Thread(target=self.client, args=(X[:n], expected[:n])) for n in sizes]
        for thread in self.threads:
            thread.start()

    def client(self, X: np.ndarray, expected: np.ndarray) -> None:
        body, headers = json.dumps(v2_request(X)), {"Content-Type": "application/json"}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        while not self.stop.is_set() and len(self.failures) < 100:
            start = time.monotonic()
            try:
                connection.request("POST", f"/v2/models/{MODEL}/infer", body, headers)
                response = connection.getresponse()
                status, data = response.status, response.read()
            except (OSError, http.client.HTTPException) as error:  # reset, closed under the request...
                self.failures.append(f"{len(X)} rows: {error!r}")
                connection.close()
                continue
            latency = time.monotonic() - start
            if status != 200 or json.loads(data)["outputs"][0]["data"] != expected.tolist():
                self.failures.append(f"{len(X)} rows: {status} {data[:200]!r}")
            else:
                self.timings.append((start, latency))
        connection.close()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=TIMEOUT)

    def count_since(self, moment: float) -> int:
        return sum(start >= moment for start, _ in self.timings)

    def p99_ms(self, since: float, until: float) -> float:
        return 1000 * float(np.percentile([latency for start, latency in self.timings if since <= start < until], 99))


@pytest.fixture(scope="session")
def haproxy_installed() -> None:
    """Checked first (a session fixture, before the models are built)."""
    if shutil.which("haproxy") is None:
        why = "no `haproxy` on PATH (scripts/install_test_tools.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}, and CI=true: CI must check the replacement")
        pytest.skip(why)


def replace_a_replica(models_dir: Path, X: np.ndarray, folder: Path, balancer: str, **server_env: str) -> dict:
    """Two replicas behind HAProxy as ``balancer`` under load; the first gets SIGTERM, a third takes
    the free slot. What the clients saw, the old replica's exit status, HAProxy's counters."""
    expected = load_models(models_dir)[MODEL].predict(X)
    with ThreadPoolExecutor(2) as pool:
        old, kept = pool.map(lambda name: Server(models_dir, folder / name, SERVE_ACCESS_LOG="0", **server_env), ["old", "kept"])
    new = None
    # The third slot has no replica yet: port 1, where nothing listens, and its checks fail.
    haproxy = HAProxy(folder, balancer, [f"127.0.0.1:{old.port}", f"127.0.0.1:{kept.port}", "127.0.0.1:1"])
    try:
        haproxy.wait_for({"replica1": "UP", "replica2": "UP", "replica3": "DOWN"})
        load = Load(haproxy.port, X, expected)
        try:
            # A rolling update's order (Kubernetes' with two replicas: one surge, none unavailable):
            # the new replica in rotation, then the old one stopped.
            new = Server(models_dir, folder / "new", SERVE_ACCESS_LOG="0", **server_env)
            haproxy.command(f"set server replicas/replica3 addr 127.0.0.1 port {new.port}")
            haproxy.wait_for({"replica3": "UP"})
            time.sleep(WARM_UP_SECONDS)
            swap_start = time.monotonic()
            old.process.send_signal(signal.SIGTERM)
            haproxy.wait_for({"replica1": "DOWN"})
            out_of_rotation = time.monotonic() - swap_start
            old_exit = old.process.wait(timeout=TIMEOUT)
            swap_end = time.monotonic()
            time.sleep(WARM_UP_SECONDS)  # the new replica in rotation
        finally:
            load.finish()
        servers = haproxy.servers()
    finally:
        haproxy.stop()
        for server in (old, kept, new):
            if server is not None and server.process.poll() is None:
                server.process.send_signal(signal.SIGINT)  # shut down now: no drain (only SIGTERM drains)
                server.process.wait(timeout=TIMEOUT)
    return {
        "requests": len(load.timings) + len(load.failures),
        "failures": load.failures,
        "during the swap": load.count_since(swap_start) - load.count_since(swap_end),
        "p99 ms before": load.p99_ms(0, swap_start),
        "p99 ms during the swap": load.p99_ms(swap_start, swap_end),
        "swap seconds": swap_end - swap_start,
        "out of rotation after": out_of_rotation,
        "old exit": old_exit,
        "old log": old.logs()[1],
        "new replica's sessions": int(servers["replica3"]["stot"]),
        "haproxy retries": sum(int(row["wretr"] or 0) for row in servers.values()),
    }


@pytest.mark.parametrize("balancer", list(BALANCERS))
def test_a_replica_replaced_under_load_loses_no_request(haproxy_installed, models_dir, test_split, tmp_path, figure, balancer):
    result = replace_a_replica(models_dir, test_split[: 4 * CLIENTS], tmp_path, balancer)
    figure(
        f"replace a replica behind HAProxy, {balancer}: {result['requests']:,} requests, "
        f"{len(result['failures'])} failed; {result['during the swap']:,} during the swap "
        f"({result['swap seconds']:.1f} s from SIGTERM to exit, out of rotation after {result['out of rotation after']:.1f} s), "
        f"p99 {result['p99 ms during the swap']:.1f} ms "
        f"(before: {result['p99 ms before']:.1f} ms); HAProxy retried {result['haproxy retries']}"
    )
    assert not result["failures"], result["failures"][:5]
    assert result["old exit"] == 0, result["old log"][-2000:]
    assert "SIGTERM: not ready" in result["old log"]
    assert result["during the swap"] > 0 and result["new replica's sessions"] > 0
