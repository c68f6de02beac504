"""The server's settings: the `serve` command's options, else environment variables, checked once.
Standard library only: the CLI imports it at every start, for the `serve` command's help.

    SERVE_HOST (127.0.0.1; the image sets 0.0.0.0)   SERVE_PORT (8080)
    WEB_CONCURRENCY           worker processes (1), the variable uvicorn and gunicorn read
    SERVE_LIMIT_CONCURRENCY   connections per worker before new ones get 503 (256)
    SERVE_MAX_BODY_BYTES      request bodies over this get 413 (8 MiB)
    SERVE_DRAIN_SECONDS       after SIGTERM, seconds of serving while not ready (0)
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


class Settings(NamedTuple):
    host: str
    port: int
    workers: int
    limit_concurrency: int
    max_body_bytes: int
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
        drain_seconds=_number("SERVE_DRAIN_SECONDS", None, float, 0.0, 0),
        graceful_timeout=_number("SERVE_GRACEFUL_TIMEOUT", None, float, 30.0, 0),
        access_log=access_log == "1",
        invocations_model=args.invocations_model or os.environ.get("SERVE_INVOCATIONS_MODEL") or "float",
    )
