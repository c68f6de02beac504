"""The image's HEALTHCHECK: `python -m housing_predictor.healthcheck [--pid PID]`. Standard library only
(a slim image has no curl).

When the container runs `serve`, healthy means GET /v2/health/ready answers 200 on its port
(`--port` on the server's command line, else $SERVE_PORT, else 8080), which turns false from the
first SIGTERM on. Any other command (selfcheck, predict) serves nothing, so there is nothing to
check: healthy. The server's process is found by its command line in /proc: PID 1, or whichever
process runs `housing_predictor serve` (under `docker run --init`, PID 1 is the init); --pid names it.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_SECONDS = 3


def command_line(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def is_server(argv: list[str]) -> bool:
    return "housing_predictor" in argv and "serve" in argv


def server_command_line(pid: str | None) -> list[str] | None:
    """The command line of the `serve` process: ``pid``'s, else PID 1's, else any process's."""
    candidates = [pid] if pid else ["1", *sorted((p.name for p in Path("/proc").glob("[0-9]*")), key=int)]
    for candidate in candidates:
        argv = command_line(candidate)
        if is_server(argv):
            return argv
    return None


def server_port(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--port" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--port="):
            return arg.split("=", 1)[1]
    return os.environ.get("SERVE_PORT") or "8080"


def check(port: str) -> str | None:
    """None when the server on 127.0.0.1:``port`` is ready, else what is wrong."""
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return None if response.status == 200 else f"{url} answered {response.status}"
    except urllib.error.HTTPError as error:
        return f"{url} answered {error.code}: not ready"
    except (OSError, ValueError) as error:
        return f"{url} cannot be reached: {getattr(error, 'reason', None) or error}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m housing_predictor.healthcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pid", help="the server's process id (default: found in /proc)")
    argv = server_command_line(parser.parse_args().pid)
    if argv is None:
        print("healthy: no `serve` process, nothing to check")
        return
    problem = check(server_port(argv))
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        sys.exit(1)
    print("healthy: ready")


if __name__ == "__main__":
    main()
