"""The server's settings: the `serve` command's options (cli.py), else environment variables
(docs/serving.md lists them), checked once; and the server's version.
"""

from __future__ import annotations

import argparse
import math
import os
import tomllib
from pathlib import Path
from typing import NamedTuple

from housing_predictor.errors import PipelineError

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

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


def server_version() -> str:
    """The project's version: the image's (built with VERSION from pyproject.toml, as IMAGE_VERSION),
    else, in a checkout, pyproject.toml's own."""
    if os.environ.get("IMAGE_VERSION"):
        return os.environ["IMAGE_VERSION"]
    try:
        return tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    except (OSError, ValueError, KeyError):  # neither an image nor a checkout: nothing says
        return "unknown"
