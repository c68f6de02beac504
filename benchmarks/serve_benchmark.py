"""Figures for `serve`: ours against MLServer and the floors, in one run; and the server
choice (uvicorn with the guard against granian and hypercorn) with --compare-servers.

    python benchmarks/serve_benchmark.py [--duration 10] [--repeat 3] [--no-mlserver] [--no-floors] [--baseline DIR]
    python benchmarks/serve_benchmark.py --compare-servers [--duration 10]

Run from the repository root after `dvc repro`. Load comes from wrk (Debian: `apt-get install wrk`):
one thread, ``--duration`` seconds a run, concurrency 16, V2 requests of 1 and of 1,000 rows from
the test split, against 127.0.0.1, one worker each. Every server runs beside the others, and every
scenario runs ``--repeat`` rounds, the servers interleaved within a round so that all see the same
disturbance (the machine is shared: 2 cores, wrk on one of them); medians are printed with the
range, and ratios are of medians.

Servers (the default run):
  - ours: `python -m housing_predictor serve`, as shipped (access log on);
  - MLServer 1.7.1 with its scikit-learn runtime over models/model.joblib, as installed (one
    separate inference process, parallel_workers=1) and with none (parallel_workers=0), from its
    own virtualenv, build/mlserver-venv (created here on first use; /build/ is git-ignored; uvloop
    pinned to 0.21: 0.23 breaks its inference worker);
  - the floors, on our server (uvicorn, the guard, the same settings and access log), serving a
    bare ASGI app that reads the body and then: replies a constant (what HTTP alone costs), or
    parses the body with Python's json module and echoes it with json.dumps (what the body costs
    with the standard library).
  - with --baseline DIR: the server of another checkout of this project (e.g. `git worktree add
    DIR main`), run by this Python over this checkout's models, as shipped too.
Targets printed: 1,000 rows >= 1.5x MLServer's best; one row >= 5x MLServer's
best and >= 0.7x the constant-reply floor; RSS <= 100 MB. Then, for ours (and the baseline): the
peak memory of one V2 request of the maximum body size (8 MiB), as a multiple of the body.

--compare-servers serves our app under uvicorn with the guard (ours), granian and
hypercorn (each with its own defences set: granian's header read timeout and backpressure,
hypercorn's read timeout), from build/server-choice-venv, and measures for each: the hostile
connections (good requests answered within a second with 256 idle and 300 slowloris
sockets open; a 16 MiB header; a body that never completes) and the throughput and memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from housing_predictor import linear  # noqa: E402

BUILD = REPO / "build"
MLSERVER_VENV = BUILD / "mlserver-venv"
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0", "scikit-learn==1.9.1"]
CHOICE_VENV = BUILD / "server-choice-venv"
CHOICE_PINS = ["granian==2.8.7", "hypercorn==0.18.0"]
FEATURES = list(linear.FEATURES)
START_TIMEOUT = 120
CONNECTIONS = 16
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open("{body}", "rb")
wrk.body = file:read("*a")
file:close()
"""


# ---------------------------------------------------------------------------------------------
# The floors: bare ASGI apps on our server (run in a subprocess by --serve-floor)
# ---------------------------------------------------------------------------------------------

CONSTANT = b'{"model_name":"float","outputs":[{"name":"predict","shape":[1],"datatype":"FP64","data":[1.0]}]}'


async def read_all(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def reply(send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def constant_app(scope, receive, send) -> None:
    if scope["type"] == "http":
        await read_all(receive)
        await reply(send, CONSTANT)


async def echo_app(scope, receive, send) -> None:
    if scope["type"] == "http":
        body = await read_all(receive)
        await reply(send, json.dumps(json.loads(body)).encode() if body else CONSTANT)  # (a GET: the health check)


def serve_floor(name: str, port: int) -> None:
    from housing_predictor.server import run, settings

    args = argparse.Namespace(host="127.0.0.1", port=str(port), workers=None, invocations_model=None)
    app = {"constant": constant_app, "echo": echo_app}[name]
    run.run(run.server_config(settings.settings(args), app), 1)


# ---------------------------------------------------------------------------------------------
# Servers, bodies, wrk
# ---------------------------------------------------------------------------------------------


def features(n_rows: int) -> np.ndarray:
    """The first ``n_rows`` rows of the test split (repeated if needed), feature order."""
    path = REPO / "data" / "test.csv"
    header = path.read_text().split("\n", 1)[0].split(",")
    X = np.loadtxt(path, delimiter=",", skiprows=1)[:, [header.index(name) for name in FEATURES]]
    return np.resize(X, (n_rows, len(FEATURES)))


def v2_body(n_rows: int) -> str:
    X = features(n_rows)
    return json.dumps({"inputs": [{"name": "features", "shape": [n_rows, 8], "datatype": "FP64", "data": X.ravel().tolist()}]})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    pids, found = [pid], []
    while pids:
        pid = pids.pop()
        found.append(pid)
        try:
            pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue
    return found


def rss_mib(pids: list[int], field: str = "VmRSS") -> float:
    """The sum of ``field`` (VmRSS, or VmHWM: the peak) of ``pids``, in MiB."""
    total = 0
    for pid in pids:
        try:
            total += int(re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))
        except (OSError, AttributeError):
            continue
    return total / 1024


class Server:
    """A server subprocess (its own session) on ``port``; ready once ``health_path`` answers 200."""

    def __init__(self, name: str, command: list[str], port: int, health_path: str, log: Path, env: dict | None = None) -> None:
        self.name, self.port, self.url = name, port, f"http://127.0.0.1:{port}"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"error: {name} exited {self.process.returncode}: see {log}")
                if answers(self.url + health_path):
                    return
                time.sleep(0.5)
        except BaseException:  # Ctrl-C while it starts: it is not in the caller's list yet
            self.stop()
            raise
        self.stop()
        raise SystemExit(f"error: {name} did not answer {health_path} within {START_TIMEOUT} s: see {log}")

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def rss_mib(self, field: str = "VmRSS") -> float:
        """Resident memory of the server and its children (MLServer's inference worker is one)."""
        return rss_mib(self.pids(), field)

    def reset_peak(self) -> None:
        for pid in self.pids():
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)
            except OSError:
                pass

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wrk(url: str, body: Path, duration: float, work: Path) -> dict:
    """One bounded wrk run: requests/s, p50/p99 latency (ms), errors (non-2xx and socket errors)."""
    script = work / f"{body.stem}.lua"
    script.write_text(LUA.format(body=body))
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(duration)}s", "--timeout", "10s", "--latency", "-s", str(script), url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    output = result.stdout
    percentiles = dict(re.findall(r"^\s*(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    if result.returncode != 0 or "Requests/sec" not in output or len(percentiles) != 2:
        raise SystemExit(f"error: {' '.join(command)} failed: {result.stderr.strip()}\n{output.strip()}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket_errors = re.findall(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors += sum(int(n) for n in socket_errors[0]) if socket_errors else 0
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": milliseconds(percentiles["50"]),
        "p99": milliseconds(percentiles["99"]),
        "errors": errors,
    }


def milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def venv(path: Path, pins: list[str]) -> Path:
    """``path``/bin, the virtualenv created with ``pins`` on first use."""
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} ({', '.join(pins)}): a few minutes, once", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    return path / "bin"


def mlserver(parallel_workers: int, work: Path) -> Server:
    """MLServer with its scikit-learn runtime over models/model.joblib (the pipeline's float model)."""
    folder = work / f"mlserver-{parallel_workers}"
    (folder / "housing").mkdir(parents=True)
    port = free_port()
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "parallel_workers": parallel_workers}
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": "housing",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(REPO / "models" / "model.joblib")},
    }
    (folder / "housing" / "model-settings.json").write_text(json.dumps(model))
    bin_dir = venv(MLSERVER_VENV, MLSERVER_PINS)
    return Server(
        f"mlserver-pw{parallel_workers}",
        [str(bin_dir / "mlserver"), "start", str(folder)],
        port,
        "/v2/models/housing/ready",
        work / f"mlserver-{parallel_workers}.log",
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )


def ours(work: Path, checkout: Path = REPO, name: str = "ours") -> Server:
    """`serve` of ``checkout``'s code (its folder first on the import path) over this checkout's models."""
    port = free_port()
    command = [sys.executable, "-m", "housing_predictor", "--models-dir", str(REPO / "models"), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {"PYTHONPATH": str(checkout), "PYTHONSAFEPATH": "1"}
    return Server(name, command, port, "/v2/health/ready", work / f"{name}.log", env=env)


def max_body_memory(server: Server) -> str:
    """Peak RSS growth of one V2 request of nearly the default maximum body (8 MiB), over the body."""
    import http.client

    per_row = len(v2_body(1000)) / 1000
    body = v2_body(int(((8 << 20) - 100_000) / per_row)).encode()
    server.reset_peak()
    before = server.rss_mib("VmHWM")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("POST", "/v2/models/float/infer", body, {"Content-Type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    grown = (server.rss_mib("VmHWM") - before) * 2**20
    return f"{len(body) / 2**20:.1f} MiB body: status {status}, peak RSS +{grown / 2**20:.1f} MiB = {grown / len(body):.2f}x the body"


def floor(name: str, work: Path) -> Server:
    port = free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-floor", name, "--port", str(port)]
    return Server(f"floor-{name}", command, port, "/", work / f"floor-{name}.log")


def summary(runs: list[dict], key: str) -> tuple[float, float, float]:
    values = [run[key] for run in runs]
    return statistics.median(values), min(values), max(values)


def measure(servers: dict[str, tuple[Server, str]], bodies: dict[str, Path], args, work: Path) -> dict:
    """wrk on every (body, server), ``args.repeat`` interleaved rounds: {(body, server): [runs]}."""
    results: dict[tuple[str, str], list[dict]] = {}
    for repeat in range(args.repeat):
        print(f"round {repeat + 1}/{args.repeat} ({len(bodies) * len(servers)} runs of {args.duration:g} s)", flush=True)
        for body_name, body in bodies.items():
            for name, (server, path) in servers.items():
                results.setdefault((body_name, name), []).append(wrk(server.url + path, body, args.duration, work))
    return results


def print_table(results: dict, rss: dict[str, float], args) -> None:
    print(f"\nwrk -t1 -c{CONNECTIONS}, {args.duration:g} s per run, median of {args.repeat} (range); one worker each")
    print(f"{'scenario':12} {'server':16} {'req/s':>20} {'rows/s':>10} {'p50 ms':>17} {'p99 ms':>19} errors")
    for (body_name, name), runs in results.items():
        rps, low, high = summary(runs, "rps")
        p50, p99 = summary(runs, "p50"), summary(runs, "p99")
        rows = int(body_name.split()[0].replace(",", "")) * rps
        print(
            f"{body_name:12} {name:16} {rps:8.0f} ({low:.0f}-{high:.0f}) {rows:10.0f} {p50[0]:6.2f} ({p50[1]:.2f}-{p50[2]:.2f})"
            f" {p99[0]:7.2f} ({p99[1]:.2f}-{p99[2]:.2f}) {sum(r['errors'] for r in runs)}"
        )
    print("\nRSS after the load (MiB): " + ", ".join(f"{name} {mib:.1f}" for name, mib in rss.items()))


def main_benchmark(args) -> None:
    with tempfile.TemporaryDirectory(prefix="serve-benchmark-") as temp:
        work = Path(temp)
        bodies = {}
        for n_rows in (1, 1000):
            path = work / f"v2-{n_rows}.json"
            path.write_text(v2_body(n_rows))
            bodies[f"{n_rows:,} row{'s' * (n_rows > 1)}"] = path
        servers: dict[str, tuple[Server, str]] = {}
        try:
            servers["ours"] = (ours(work), "/v2/models/float/infer")
            if args.baseline:
                servers["baseline"] = (ours(work, args.baseline, "baseline"), "/v2/models/float/infer")
            if not args.no_mlserver:
                for parallel_workers in (1, 0):
                    server = mlserver(parallel_workers, work)
                    servers[server.name] = (server, "/v2/models/housing/infer")
            for name in () if args.no_floors else ("constant", "echo"):
                server = floor(name, work)
                servers[server.name] = (server, "/")
            results = measure(servers, bodies, args, work)
            rss = {name: server.rss_mib() for name, (server, _) in servers.items()}
            memory = {name: max_body_memory(servers[name][0]) for name in ("ours", "baseline") if name in servers}
        finally:
            for server, _ in servers.values():
                server.stop()
    print_table(results, rss, args)

    def rps(body_name: str, name: str) -> float:
        return summary(results[(body_name, name)], "rps")[0]

    print("\nTargets, medians:")
    mlservers = [name for name in servers if name.startswith("mlserver")]
    for body_name, target in (("1,000 rows", 1.5), ("1 row", 5.0)):
        if mlservers:
            best = max(mlservers, key=lambda name: rps(body_name, name))
            ratio = rps(body_name, "ours") / rps(body_name, best)
            print(
                f"  {body_name:10} ours / MLServer's best ({best}): {ratio:.2f}x (target >= {target:g}): {'met' if ratio >= target else 'MISSED'}"
            )
    for floor_name in () if args.no_floors else ("floor-constant", "floor-echo"):
        for body_name in bodies:
            ratio = rps(body_name, "ours") / rps(body_name, floor_name)
            target = " (target >= 0.7)" if (floor_name, body_name) == ("floor-constant", "1 row") else ""
            print(f"  {body_name:10} ours / {floor_name}: {ratio:.2f}x{target}")
    print(f"  RSS ours {rss['ours']:.1f} MiB (target <= 100 MB): {'met' if rss['ours'] * 1.048576 <= 100 else 'MISSED'}")
    if args.baseline:
        for body_name in bodies:
            print(f"  {body_name:10} ours / baseline: {rps(body_name, 'ours') / rps(body_name, 'baseline'):.2f}x")
    for name, line in memory.items():
        print(f"  maximum V2 body, {name}: {line}")


# ---------------------------------------------------------------------------------------------
# --compare-servers: uvicorn with the guard, granian, hypercorn, on items 1-3, throughput, memory
# ---------------------------------------------------------------------------------------------

APP_MODULE = """
from pathlib import Path
from housing_predictor.models import load_models
from housing_predictor.server.app import create_app
app = create_app(load_models(Path({models!r})), "float", 8 << 20)
"""


def good_request(port: int, body: bytes, timeout: float = 5.0) -> float | None:
    """Seconds for one single-row V2 request on a new connection, or None if it failed."""
    import http.client

    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/v2/models/float/infer", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return time.monotonic() - start if response.status == 200 else None
    except (OSError, Exception):
        return None
    finally:
        connection.close()


def starve_probe(server: Server, body: bytes) -> str:
    """256 idle and 300 slowloris sockets open: how many of 15 good requests get a 200 within 1 s."""
    sockets, stop = [], threading.Event()
    try:
        for _ in range(556):
            try:
                sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            except OSError:
                break
        slow = sockets[256:]

        def drip() -> None:
            line = b"POST /v2/models/float/infer HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
            for i in range(len(line)):
                for sock in slow:
                    try:
                        sock.send(line[i : i + 1])
                    except OSError:
                        pass
                if stop.wait(1.0):
                    return

        dripper = threading.Thread(target=drip)
        dripper.start()
        time.sleep(2)
        times = [good_request(server.port, body) for _ in range(15)]
        stop.set()
        dripper.join(timeout=30)
    finally:
        for sock in sockets:
            sock.close()
    answered = sum(t is not None and t < 1.0 for t in times)
    return f"{answered}/15 within 1 s"


def flood_probe(server: Server) -> str:
    """A 16 MiB header: the status, and the growth of peak memory."""
    server.reset_peak()
    before = server.rss_mib("VmHWM")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Flood: ")
    start = time.monotonic()
    try:
        for _ in range(256):
            sock.sendall(b"a" * 65536)
        sock.sendall(b"\r\n\r\n")
    except OSError:
        pass
    status = read_status(sock, 60)
    sock.close()
    return f"{status or 'closed'} in {time.monotonic() - start:.1f} s, peak +{server.rss_mib('VmHWM') - before:.0f} MiB"


def read_status(sock: socket.socket, timeout: float) -> str | None:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n" in data:
                break
    except OSError:
        pass
    return data.split(b"\r\n", 1)[0].split(b" ")[1].decode() if data.startswith(b"HTTP/") else None


def incomplete_body_probe(server: Server) -> str:
    """Content-Length 1000, 10 bytes sent: what the client gets within 30 s, and when."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(
        b"POST /v2/models/float/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[1,2,3,4,5"
    )
    start = time.monotonic()
    status = read_status(sock, 30)
    elapsed = time.monotonic() - start
    sock.close()
    if status is None and elapsed >= 29:
        return "still waiting after 30 s"
    return f"{status or 'closed'} after {elapsed:.1f} s"


def compare_servers(args) -> None:
    bin_dir = venv(CHOICE_VENV, ["-r", str(REPO / "requirements-runtime.txt"), *CHOICE_PINS])
    with tempfile.TemporaryDirectory(prefix="server-choice-") as temp:
        work = Path(temp)
        (work / "choice_app.py").write_text(APP_MODULE.format(models=str(REPO / "models")))
        env = {"PYTHONPATH": f"{work}{os.pathsep}{REPO}", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        python = str(bin_dir / "python")
        commands = {
            "uvicorn+guard": lambda port: [python, "-m", "housing_predictor", "serve", "--port", str(port)],
            "granian": lambda port: (
                [str(bin_dir / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
                + ["--workers", "1", "--http", "1", "--http1-header-read-timeout", "10000", "--backpressure", "256"]
                + ["--access-log", "choice_app:app"]
            ),
            "hypercorn": lambda port: (
                [str(bin_dir / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1"]
                + ["--read-timeout", "10", "--keep-alive", "5", "--access-logfile", "-", "choice_app:app"]
            ),
        }
        bodies = {}
        for n_rows in (1, 1000):
            path = work / f"v2-{n_rows}.json"
            path.write_text(v2_body(n_rows))
            bodies[f"{n_rows:,} row{'s' * (n_rows > 1)}"] = path
        one_row = bodies["1 row"].read_bytes()
        rows, results = {}, {}
        for name, command in commands.items():
            port = free_port()
            server = Server(name, command(port), port, "/v2/health/ready", work / f"{name}.log", env=env)
            try:
                idle_rss = server.rss_mib()
                print(f"{name}: probing", flush=True)
                rows[name] = {
                    "starve": starve_probe(server, one_row),
                    "flood": flood_probe(server),
                    "body": incomplete_body_probe(server),
                }
                for body_name, body in bodies.items():
                    results[(body_name, name)] = [wrk(server.url + "/v2/models/float/infer", body, args.duration, work)]
                rows[name]["rss"] = f"{idle_rss:.0f} idle, {server.rss_mib():.0f} after load"
            finally:
                server.stop()
        site = bin_dir.parent / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        sizes = {
            name: du(site, name)
            for name in ("granian", "hypercorn", "h2", "hpack", "hyperframe", "wsproto", "priority", "taskgroup")
        }
    print(f"\n{'server':14} {'256 idle + 300 slowloris':26} {'16 MiB header':36} {'body never completes':26} RSS MiB")
    for name, row in rows.items():
        print(f"{name:14} {row['starve']:26} {row['flood']:36} {row['body']:26} {row['rss']}")
    print(f"\nwrk -t1 -c{CONNECTIONS}, {args.duration:g} s, one run each")
    for (body_name, name), runs in results.items():
        run = runs[0]
        print(f"  {body_name:10} {name:14} {run['rps']:8.0f} req/s  p99 {run['p99']:.2f} ms  errors {run['errors']}")
    print("Installed size (MiB): " + ", ".join(f"{name} {size:.1f}" for name, size in sizes.items() if size))


def du(site: Path, package: str) -> float:
    return sum(f.stat().st_size for f in site.glob(f"{package}*/**/*") if f.is_file()) / 2**20 if site.exists() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--no-mlserver", action="store_true", help="ours and the floors only")
    parser.add_argument("--no-floors", action="store_true", help="no floor servers (e.g. ours against --baseline only)")
    parser.add_argument("--baseline", type=Path, help="another checkout of this project, served beside ours")
    parser.add_argument("--compare-servers", action="store_true", help="uvicorn with the guard, granian, hypercorn")
    parser.add_argument("--serve-floor", choices=["constant", "echo"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor, args.port)
        return
    import shutil

    if not shutil.which("wrk"):
        print("NOTE: wrk is not installed, so nothing was measured. Install it (Debian/Ubuntu: apt-get install wrk) and rerun.")
        return
    if not (REPO / "models" / "float.safetensors").exists():
        raise SystemExit("error: models/ is empty: run `dvc repro` first")
    if args.compare_servers:
        compare_servers(args)
    else:
        main_benchmark(args)


if __name__ == "__main__":
    main()
