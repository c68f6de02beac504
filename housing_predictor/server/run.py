"""Running `serve`: its settings (options, else environment variables, checked once) and uvicorn.

Imported only when `serve` runs (housing_predictor/serve.py is the command's light front).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import signal
from pathlib import Path
from typing import NamedTuple

import uvicorn
from uvicorn.supervisors import Multiprocess

from housing_predictor.errors import PipelineError
from housing_predictor.serve import DEFAULT_HOST, DEFAULT_PORT
from housing_predictor.server.app import app_factory, create_app, load_models

DEFAULT_MAX_BODY_BYTES = 8 << 20  # ~80,000 CSV rows; a JSON body's numbers take ~4x as much memory
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


def serve(args: argparse.Namespace) -> None:
    """Load and verify every model (a bad one is one line and exit 2, before any port opens), then
    serve until SIGTERM or SIGINT; a graceful shutdown exits 0."""
    config = settings(args)
    models = load_models(Path(args.models_dir))
    if config.invocations_model not in models:
        raise PipelineError(f"invocations model {config.invocations_model!r} does not exist: the models are {', '.join(models)}")

    if config.workers == 1:
        app = create_app(models, config.invocations_model, config.max_body_bytes, config.drain_seconds)
    else:  # each worker process builds its own app: the factory is what crosses the process boundary
        app = functools.partial(
            app_factory, args.models_dir, config.invocations_model, config.max_body_bytes, config.drain_seconds
        )
    server_config = uvicorn.Config(
        app,
        factory=config.workers > 1,
        http="httptools",  # uvicorn's C parser (requirements-runtime.txt says why), never a silent fallback to h11
        host=config.host,
        port=config.port,
        workers=config.workers,
        limit_concurrency=config.limit_concurrency,
        timeout_graceful_shutdown=config.graceful_timeout,
        access_log=config.access_log,
        proxy_headers=False,  # no proxy is trusted to rewrite the client's address
        server_header=False,
        log_level="info",
    )
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully, for an
    # embedding program to act on; for us a graceful shutdown is the normal end: exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    if config.workers == 1:
        uvicorn.Server(server_config).run()
    else:
        Multiprocess(server_config, sockets=[server_config.bind_socket()]).run()
