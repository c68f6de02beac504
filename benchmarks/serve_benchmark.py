"""Figures for `serve` (issue 14's targets), against MLflow's scoring server in the same run.

    python benchmarks/serve_benchmark.py [--duration 5] [--repeat 3] [--no-mlflow]

Run from the repository root after `dvc repro`. Load comes from wrk (Debian: `apt-get install wrk`),
in bounded runs (``--duration`` seconds each) against 127.0.0.1, one wrk thread, POST bodies set
by small Lua scripts. Measured, for our server (`python -m housing_predictor serve`, one worker,
access log on, as shipped) and for MLflow's (`mlflow models serve --env-manager local`, serving
models/model.joblib saved as an MLflow sklearn model):
  - single-row requests at concurrency 1 and 16: requests/s, p50 and p99 latency
    (ours: V2 /infer, and /invocations with MLflow's own body; MLflow: /invocations);
  - 1,000-row requests at concurrency 4: rows/s (JSON, and CSV);
  - each server's RSS after the load (MLflow's: its whole process tree).
MLflow runs from its own virtualenv, build/mlflow-venv (created here on first use, never committed:
/build/ is git-ignored), so it never touches the project's environment.

The machine is shared (2 cores, other work running): every scenario runs ``--repeat`` times, ours and
MLflow's interleaved so that both see the same disturbance; medians are printed with the range, and
ratios are of medians. wrk shares the 2 cores with the server it loads.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from housing_predictor import linear  # noqa: E402

MLFLOW_VENV = REPO / "build" / "mlflow-venv"
MLFLOW_MODEL = REPO / "build" / "mlflow-model"
MLFLOW_PINS = ["mlflow==3.17.2", "scikit-learn==1.9.1"]  # scikit-learn: the pipeline's, to load its pickle
FEATURES = list(linear.FEATURES)
START_TIMEOUT = 120
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
local file = io.open("{body}", "rb")
wrk.body = file:read("*a")
file:close()
"""


def features(n_rows: int) -> np.ndarray:
    """The first ``n_rows`` rows of the test split (repeated if needed), feature order."""
    path = REPO / "data" / "test.csv"
    header = path.read_text().split("\n", 1)[0].split(",")
    X = np.loadtxt(path, delimiter=",", skiprows=1)[:, [header.index(name) for name in FEATURES]]
    return np.resize(X, (n_rows, len(FEATURES)))


def bodies(work: Path) -> dict[str, tuple[Path, str]]:
    """Request bodies: name -> (file, content type)."""
    made = {}

    def save(name: str, text: str, content_type: str) -> None:
        path = work / f"{name}.body"
        path.write_text(text)
        made[name] = (path, content_type)

    for n_rows in (1, 1000):
        X = features(n_rows)
        v2 = {"inputs": [{"name": "features", "shape": [n_rows, 8], "datatype": "FP64", "data": X.ravel().tolist()}]}
        save(f"v2-{n_rows}", json.dumps(v2), "application/json")
        save(f"split-{n_rows}", json.dumps({"dataframe_split": {"columns": FEATURES, "data": X.tolist()}}), "application/json")
        csv_text = ",".join(FEATURES) + "\n" + "\n".join(",".join(map(repr, row)) for row in X.tolist()) + "\n"
        save(f"csv-{n_rows}", csv_text, "text/csv")
    return made


class Server:
    """A server subprocess; ``url`` once it answers ``health_path`` with 200."""

    def __init__(self, name: str, command: list[str], port: int, health_path: str, log: Path, env: dict | None = None) -> None:
        self.name, self.url = name, f"http://127.0.0.1:{port}"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"error: {name} exited {self.process.returncode}: see {log}")
            if subprocess.run(["python3", "-c", HEALTH, self.url + health_path], capture_output=True).returncode == 0:
                return
            time.sleep(0.5)
        self.stop()
        raise SystemExit(f"error: {name} did not answer {health_path} within {START_TIMEOUT} s: see {log}")

    def rss_mib(self) -> float:
        """Resident memory of the server and its children (MLflow's CLI runs uvicorn as a child)."""
        pids, total = [self.process.pid], 0
        while pids:
            pid = pids.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
                pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except (OSError, AttributeError):
                continue
        return total / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and its children
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


HEALTH = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wrk(url: str, body: tuple[Path, str], connections: int, duration: float, work: Path) -> dict:
    """One bounded wrk run: requests/s, p50/p99 latency (ms), errors."""
    script = work / f"{body[0].stem}.lua"
    script.write_text(LUA.format(content_type=body[1], body=body[0]))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "10s", "--latency", "-s", str(script), url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    output = result.stdout
    if result.returncode != 0 or "Requests/sec" not in output:
        raise SystemExit(f"error: {' '.join(command)} failed: {result.stderr.strip() or output.strip()}")
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += (
        sum(int(n) for n in re.findall(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)[0])
        if "Socket errors" in output
        else 0
    )
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": milliseconds(percentiles["50"]),
        "p99": milliseconds(percentiles["99"]),
        "errors": errors,
    }


def milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def mlflow_ready(rebuild: bool) -> Path:
    """build/mlflow-venv with MLflow installed, and models/model.joblib saved as an MLflow model."""
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {MLFLOW_VENV} ({', '.join(MLFLOW_PINS)}): a few minutes, once", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MLFLOW_PINS], check=True)
    if rebuild or not MLFLOW_MODEL.exists():
        shutil.rmtree(MLFLOW_MODEL, ignore_errors=True)
        save = (
            "import sys, joblib, mlflow.sklearn\n"
            "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], serialization_format='pickle')\n"
        )
        subprocess.run([str(python), "-c", save, str(REPO / "models" / "model.joblib"), str(MLFLOW_MODEL)], check=True)
    return MLFLOW_VENV / "bin"


def site_bytes(python: Path) -> int:
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return sum(f.stat().st_size for f in Path(site).rglob("*") if f.is_file())


def summary(runs: list[dict], key: str) -> tuple[float, float, float]:
    values = [run[key] for run in runs]
    return statistics.median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (default: %(default)s)")
    parser.add_argument("--no-mlflow", action="store_true", help="measure our server only")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("NOTE: wrk is not installed, so nothing was measured. Install it (Debian/Ubuntu: apt-get install wrk) and rerun.")
        return
    if not (REPO / "models" / "float.safetensors").exists():
        raise SystemExit("error: models/ is empty: run `dvc repro` first")

    with tempfile.TemporaryDirectory(prefix="serve-benchmark-") as temp:
        work = Path(temp)
        made = bodies(work)
        servers = {}
        try:
            port = free_port()
            servers["ours"] = Server(
                "ours",
                [sys.executable, "-m", "housing_predictor", "serve", "--host", "127.0.0.1", "--port", str(port)],
                port,
                "/v2/health/ready",
                work / "ours.log",
            )
            if not args.no_mlflow:
                mlflow_bin = mlflow_ready(rebuild=False)
                port = free_port()
                servers["mlflow"] = Server(
                    "mlflow",
                    [str(mlflow_bin / "mlflow"), "models", "serve", "-m", str(MLFLOW_MODEL), "--env-manager", "local"]
                    + ["-h", "127.0.0.1", "-p", str(port), "-w", "1"],  # one worker, as ours (MLflow's default too)
                    port,
                    "/ping",
                    work / "mlflow.log",
                    env={"PATH": f"{mlflow_bin}{os.pathsep}{os.environ['PATH']}", "MLFLOW_TRACKING_URI": f"file://{work}/mlruns"},
                )
            scenarios = [
                # (label, server, path, body, connections)
                ("1 row, c=1   V2 /infer", "ours", "/v2/models/float/infer", "v2-1", 1),
                ("1 row, c=1   /invocations", "ours", "/invocations", "split-1", 1),
                ("1 row, c=1   /invocations", "mlflow", "/invocations", "split-1", 1),
                ("1 row, c=16  V2 /infer", "ours", "/v2/models/float/infer", "v2-1", 16),
                ("1 row, c=16  /invocations", "ours", "/invocations", "split-1", 16),
                ("1 row, c=16  /invocations", "mlflow", "/invocations", "split-1", 16),
                ("1000 rows, c=4  V2 /infer JSON", "ours", "/v2/models/float/infer", "v2-1000", 4),
                ("1000 rows, c=4  /invocations JSON", "ours", "/invocations", "split-1000", 4),
                ("1000 rows, c=4  /invocations JSON", "mlflow", "/invocations", "split-1000", 4),
                ("1000 rows, c=4  /invocations CSV", "ours", "/invocations", "csv-1000", 4),
                ("1000 rows, c=4  /invocations CSV", "mlflow", "/invocations", "csv-1000", 4),
            ]
            scenarios = [s for s in scenarios if s[1] in servers]
            results: dict[tuple[str, str], list[dict]] = {}
            for repeat in range(args.repeat):
                print(f"round {repeat + 1}/{args.repeat} ({len(scenarios)} runs of {args.duration:g} s)", flush=True)
                for label, name, path, body, connections in scenarios:
                    run = wrk(servers[name].url + path, made[body], connections, args.duration, work)
                    results.setdefault((label, name), []).append(run)
            rss = {name: server.rss_mib() for name, server in servers.items()}
        finally:
            for server in servers.values():
                server.stop()

    print(f"\nwrk -t1, {args.duration:g} s per run, median of {args.repeat} (range); ours: 1 worker, access log on")
    print(f"{'scenario':36} {'server':7} {'req/s':>16} {'rows/s':>9} {'p50 ms':>15} {'p99 ms':>17} errors")
    for (label, name), runs in results.items():
        rps, low, high = summary(runs, "rps")
        p50, p99 = summary(runs, "p50"), summary(runs, "p99")
        rows = int(label.split()[0]) * rps
        print(
            f"{label:36} {name:7} {rps:7.0f} ({low:.0f}-{high:.0f}) {rows:9.0f} {p50[0]:6.2f} ({p50[1]:.2f}-{p50[2]:.2f})"
            f" {p99[0]:7.2f} ({p99[1]:.2f}-{p99[2]:.2f}) {sum(r['errors'] for r in runs)}"
        )
    print(
        "\nServer RSS after the load (MiB): "
        + ", ".join(f"{name} {mib:.1f}" for name, mib in rss.items())
        + " (target: ours <= 100)"
    )
    if "mlflow" in servers:
        print(f"MLflow's environment (site-packages): {site_bytes(MLFLOW_VENV / 'bin' / 'python') / 2**20:.0f} MiB")
        print("\nTargets at concurrency 16, single row (ours vs MLflow's /invocations; medians):")
        theirs = results[("1 row, c=16  /invocations", "mlflow")]
        for label in ("1 row, c=16  V2 /infer", "1 row, c=16  /invocations"):
            ours = results[(label, "ours")]
            rps_ratio = summary(ours, "rps")[0] / summary(theirs, "rps")[0]
            p99_ratio = summary(ours, "p99")[0] / summary(theirs, "p99")[0]
            print(
                f"  {label.split('  ')[1]:14} requests/s {rps_ratio:.2f}x MLflow's (target >= 3), p99 {p99_ratio:.2f} of MLflow's (target <= 0.33)"
            )


if __name__ == "__main__":
    main()
