"""The server's settings: the `serve` command's options, else environment variables, checked once.
Standard library only: the CLI imports it at every start, for the `serve` command's help.

    SERVE_HOST (127.0.0.1; the image sets 0.0.0.0)   SERVE_PORT (8080)
    WEB_CONCURRENCY           worker processes (1), the variable uvicorn and gunicorn read
    SERVE_LIMIT_CONCURRENCY   connections per worker (256); past it a new connection closes the one
                              that has waited longest for its request's headers (503 if none waits)
    SERVE_MAX_BODY_BYTES      request bodies over this get 413 (8 MiB)
    SERVE_MAX_HEADER_BYTES    request line and headers over this get 431 (32 KiB)
    SERVE_HEADER_TIMEOUT      seconds for a request's headers to arrive, from the connection's start or
                              the previous response (10); then 408 and close (close alone if nothing came)
    SERVE_BODY_TIMEOUT        seconds for a request's body to arrive, from its headers (10); then 408
    SERVE_KEEP_ALIVE_TIMEOUT  seconds an idle keep-alive connection stays open (5)
    SERVE_DRAIN_SECONDS       after SIGTERM, seconds of serving while not ready, every response
                              closing its connection (5), for load balancers to route elsewhere
    SERVE_GRACEFUL_TIMEOUT    then, seconds for in-flight requests to complete (30)
    SERVE_ACCESS_LOG          1: one access log line per request on stdout; 0: none
    SERVE_INVOCATIONS_MODEL   the model /invocations predicts with (float)
"""

from __future__ import annotations

import argparse
import math
import os
from typing import NamedTuple

from housing_predictor.errors import PipelineError

DEFAULT_HOST = "127.0.0.1"  # only this machine, unless asked: the image asks for 0.0.0.0
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 8 << 20  # ~80,000 CSV rows
DEFAULT_LIMIT_CONCURRENCY = 256
DEFAULT_MAX_HEADER_BYTES = 32 << 10  # nginx's default is 4 x 8 KiB buffers; Node's and h11's 16 KiB
DEFAULT_HEADER_TIMEOUT = 10.0  # nginx's client_header_timeout is 60 s: a slot is cheap here (shed fairly)
DEFAULT_BODY_TIMEOUT = 10.0  # 8 MiB in 10 s: 0.8 MB/s at least, any LAN or cluster network
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0  # uvicorn's default
# Long enough for load balancers to take a replica out of rotation once its readiness fails (or, in
# Kubernetes, once its endpoint is removed, which happens while SIGTERM is delivered, not before):
# docs/serving.md, "Behind a load balancer". Within `docker stop`'s 10 s before SIGKILL.
DEFAULT_DRAIN_SECONDS = 5.0


class Settings(NamedTuple):
    host: str
    port: int
    workers: int
    limit_concurrency: int
    max_body_bytes: int
    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    keep_alive_timeout: float
    drain_seconds: float
    graceful_timeout: float
    access_log: bool
    invocations_model: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` command's options (each overrides its environment variable)."""
    parser.add_argument("--host", help=f"address to listen on (default: $SERVE_HOST or {DEFAULT_HOST})")
    parser.add_argument("--port", help=f"TCP port, 0 for any free one (default: $SERVE_PORT or {DEFAULT_PORT})")
    parser.add_argument("--workers", help="worker processes (default: $WEB_CONCURRENCY or 1)")
    parser.add_argument("--invocations-model", help="the model /invocations uses (default: $SERVE_INVOCATIONS_MODEL or float)")


def _number(name: str, option: object, kind: type, default: float, minimum: float) -> float:
    """An option's value, else the environment variable ``name``'s, else ``default``; checked."""
    text = option if option is not None else os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = kind(text)
    except ValueError:
        raise PipelineError(f"{name}={text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not (math.isfinite(value) and value >= minimum):
        raise PipelineError(f"{name}={text!r} must be a finite number >= {minimum}")
    return value


def settings(args: argparse.Namespace) -> Settings:
    access_log = os.environ.get("SERVE_ACCESS_LOG", "1")
    if access_log not in ("0", "1"):
        raise PipelineError(f"SERVE_ACCESS_LOG={access_log!r} must be 1 (log every request) or 0")
    port = _number("SERVE_PORT", args.port, int, DEFAULT_PORT, 0)
    if port > 65535:
        raise PipelineError(f"port {port} is not a TCP port (0 to 65535; 0 picks a free one)")
    return Settings(
        host=args.host or os.environ.get("SERVE_HOST") or DEFAULT_HOST,
        port=port,
        workers=_number("WEB_CONCURRENCY", args.workers, int, 1, 1),
        limit_concurrency=_number("SERVE_LIMIT_CONCURRENCY", None, int, DEFAULT_LIMIT_CONCURRENCY, 1),
        max_body_bytes=_number("SERVE_MAX_BODY_BYTES", None, int, DEFAULT_MAX_BODY_BYTES, 1),
        max_header_bytes=_number("SERVE_MAX_HEADER_BYTES", None, int, DEFAULT_MAX_HEADER_BYTES, 1024),
        header_timeout=_number("SERVE_HEADER_TIMEOUT", None, float, DEFAULT_HEADER_TIMEOUT, 0.1),
        body_timeout=_number("SERVE_BODY_TIMEOUT", None, float, DEFAULT_BODY_TIMEOUT, 0.1),
        keep_alive_timeout=_number("SERVE_KEEP_ALIVE_TIMEOUT", None, float, DEFAULT_KEEP_ALIVE_TIMEOUT, 0.1),
        drain_seconds=_number("SERVE_DRAIN_SECONDS", None, float, DEFAULT_DRAIN_SECONDS, 0),
        graceful_timeout=_number("SERVE_GRACEFUL_TIMEOUT", None, float, 30.0, 0),
        access_log=access_log == "1",
        invocations_model=args.invocations_model or os.environ.get("SERVE_INVOCATIONS_MODEL") or "float",
    )
