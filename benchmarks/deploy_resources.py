"""What a pod of deploy/base uses: the image's CPU and memory under bounded load, on a real Docker
engine, run as the Deployment runs it. The figures deploy/base's requests and limits come from.

    python benchmarks/deploy_resources.py IMAGE [--duration 15]

Run from the repository root after `dvc repro` (the load is the test split's rows), with kubectl
and wrk (Debian: `apt-get install wrk`) on PATH and a local Docker engine (DOCKER_HOST unix:// or
unset). It renders deploy/base with `kubectl kustomize` and runs IMAGE's `serve` as its Deployment
says: the container's env (WEB_CONCURRENCY, the drain...), its user and group, a read-only root
filesystem with a tmpfs where it mounts an emptyDir, every capability dropped, no-new-privileges;
but not its CPU and memory limits, which are what is measured. On 127.0.0.1 (`--network host`).

Phases, one after another, `--duration` seconds each: idle; wrk with 16 connections sending 1-row
and 1,000-row V2 requests; wrk with 4, then 16 connections sending V2 bodies of the maximum size
(SERVE_MAX_BODY_BYTES). For each phase it prints the container's CPU (its cgroup's CPU time over
the phase, from the Engine API's stats, which `docker stats` reads): in cores, and in milliseconds
a request, which depends less on what else the machine runs; its memory as
`docker stats` counts it (cgroup usage less inactive page cache: what the kubelet calls the working
set and a memory limit is held against) at the end and at the peak of samples every 0.25 s, and
the server processes' RSS (VmRSS; VmHWM, the peak). Asserts nothing: a shared machine's figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_benchmark import LUA, REPO, answers, free_port, milliseconds, process_tree, rss_mib, v2_body  # noqa: E402

from housing_predictor.server.settings import DEFAULT_MAX_BODY_BYTES  # noqa: E402


class Engine:
    """The Docker Engine API on its unix socket: one-shot container stats, as `docker stats` gets them."""

    def __init__(self) -> None:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if not host.startswith("unix://"):
            raise SystemExit(f"error: DOCKER_HOST={host}: this benchmark reads a local engine's unix socket")
        self.socket_path = host.removeprefix("unix://")

    def stats(self, container: str) -> dict:
        connection = http.client.HTTPConnection("localhost", timeout=10)
        connection.sock = socket.socket(socket.AF_UNIX)
        connection.sock.connect(self.socket_path)
        connection.request("GET", f"/containers/{container}/stats?stream=false&one-shot=true")
        return json.loads(connection.getresponse().read())


def working_set_mib(stats: dict) -> float | None:
    """Memory as `docker stats` shows it: usage less inactive file pages (cgroup v1 or v2); None
    when the engine had no sample (it happens while the machine is busy)."""
    memory = stats["memory_stats"]
    if "usage" not in memory:
        return None
    inactive = memory["stats"].get("total_inactive_file", memory["stats"].get("inactive_file", 0))
    return (memory["usage"] - (inactive if inactive < memory["usage"] else 0)) / 2**20


def deployment_container() -> tuple[dict, dict]:
    """deploy/base's Deployment, rendered: (its pod spec, its one container)."""
    rendered = subprocess.run(["kubectl", "kustomize", str(REPO / "deploy" / "base")], capture_output=True, text=True, check=True)
    deployment = next(o for o in yaml.safe_load_all(rendered.stdout) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def docker_run_args(pod: dict, container: dict, port: int) -> list[str]:
    """`docker run` options that do what the pod spec says (but the CPU and memory limits)."""
    pod_security, security = pod["securityContext"], container["securityContext"]
    args = ["--network", "host", "--user", f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}"]
    args += ["--security-opt", "no-new-privileges"] if security["allowPrivilegeEscalation"] is False else []
    args += ["--read-only"] if security["readOnlyRootFilesystem"] else []
    args += [f"--cap-drop={cap}" for cap in security["capabilities"]["drop"]]
    empty_dirs = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
    args += [f"--tmpfs={mount['mountPath']}" for mount in container.get("volumeMounts", []) if mount["name"] in empty_dirs]
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    env |= {"SERVE_HOST": "127.0.0.1", "SERVE_PORT": str(port)}  # loopback only, here
    return args + [arg for name, value in env.items() for arg in ("--env", f"{name}={value}")]


def wrk(url: str, body: Path, connections: int, duration: int) -> dict:
    script = body.with_suffix(".lua")
    script.write_text(LUA.format(body=body))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "20s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60).stdout
    if "Requests/sec" not in output:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{output}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", output, re.MULTILINE).group(1)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), "p99": milliseconds(p99), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", help="the image to run, e.g. housing-mlops (scripts/build_image.sh builds it)")
    parser.add_argument("--duration", type=int, default=15, help="seconds a phase (default: %(default)s)")
    args = parser.parse_args()

    pod, container = deployment_container()
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    max_body = int(env.get("SERVE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
    port, engine = free_port(), Engine()
    command = ["docker", "run", "--detach", "--rm", *docker_run_args(pod, container, port), args.image, *container["args"]]
    print("$", " ".join(command))
    container_id = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not answers(url + "/v2/health/ready"):
            if time.monotonic() > deadline:
                raise SystemExit("error: the container did not become ready in 60 s")
            time.sleep(0.25)
        pid = int(
            subprocess.run(
                ["docker", "inspect", "--format", "{{.State.Pid}}", container_id], capture_output=True, text=True
            ).stdout
        )

        with tempfile.TemporaryDirectory() as work:
            bodies = {}
            for name, rows in (("1 row", 1), ("1,000 rows", 1000)):
                bodies[name] = Path(work, f"rows{rows}.json")
                bodies[name].write_text(v2_body(rows))
            per_row = len(v2_body(1000)) / 1000
            big = Path(work, "max.json")
            big.write_text(v2_body(int(max_body / per_row * 0.99)))
            phases = [("idle", None, 0), ("1 row, c=16", bodies["1 row"], 16), ("1,000 rows, c=16", bodies["1,000 rows"], 16)]
            for connections in (4, 16):
                phases.append((f"{big.stat().st_size / 2**20:.1f} MiB bodies, c={connections}", big, connections))

            print(f"\n{args.image}, WEB_CONCURRENCY={env.get('WEB_CONCURRENCY', '1')}, {args.duration} s a phase")
            print(
                "| phase | req/s | p99 ms | errors | CPU (cores) | CPU ms a request | memory, docker stats: end / peak (MiB) | RSS: end / peak (MiB) |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for name, body, connections in phases:
                samples, done = [], threading.Event()

                def sample(samples=samples, done=done) -> None:
                    while not done.wait(0.25):
                        samples.append(working_set_mib(engine.stats(container_id)))

                sampler = threading.Thread(target=sample)
                before, started = engine.stats(container_id), time.monotonic()
                sampler.start()
                load = wrk(f"{url}/v2/models/float/infer", body, connections, args.duration) if body else None
                if body is None:
                    time.sleep(args.duration)
                done.set()
                sampler.join()
                after, elapsed = engine.stats(container_id), time.monotonic() - started
                cores = (
                    (after["cpu_stats"]["cpu_usage"]["total_usage"] - before["cpu_stats"]["cpu_usage"]["total_usage"])
                    / 1e9
                    / elapsed
                )
                pids = process_tree(pid)
                end = working_set_mib(after)
                samples = [sample for sample in (*samples, end) if sample is not None]
                print(
                    f"| {name} | {load['rps']:,.0f} | {load['p99']:.1f} | {load['errors']} |" if load else f"| {name} | | | |",
                    f"{cores:.2f} | {cores * 1000 / load['rps']:.2f} |" if load else f"{cores:.2f} | |",
                    f"{samples[-1]:.1f} / {max(samples):.1f} | {rss_mib(pids, 'VmRSS'):.1f} / {rss_mib(pids, 'VmHWM'):.1f} |",
                )
    finally:
        subprocess.run(["docker", "stop", "--time", "60", container_id], capture_output=True)


if __name__ == "__main__":
    main()
