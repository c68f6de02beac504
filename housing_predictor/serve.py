"""`python -m housing_predictor serve`: the models over HTTP (uvicorn running the Starlette app of
housing_predictor/server/).

    serve [--host HOST] [--port PORT] [--workers N] [--invocations-model NAME]

Endpoints: the Open Inference Protocol (V2) REST API (/v2, /v2/health/{live,ready},
/v2/models/{model}[/versions/{version}][/ready|/infer]) and MLflow/SageMaker's /ping and
/invocations. Settings come from the options, else from the environment (README "Serving"):

    SERVE_HOST (127.0.0.1; the image sets 0.0.0.0)   SERVE_PORT (8080)
    WEB_CONCURRENCY    worker processes (1), the variable uvicorn and gunicorn read
    SERVE_LIMIT_CONCURRENCY   connections per worker before new ones get 503 (256)
    SERVE_MAX_BODY_BYTES      request bodies over this get 413 (8 MiB)
    SERVE_DRAIN_SECONDS       after SIGTERM, seconds of serving while not ready (0)
    SERVE_GRACEFUL_TIMEOUT    then, seconds for in-flight requests to complete (30)
    SERVE_ACCESS_LOG          1: one access log line per request on stdout; 0: none
    SERVE_INVOCATIONS_MODEL   the model /invocations predicts with (float)

This module is imported by every CLI start (predict.argument_parser), so it imports only the
standard library at the top; uvicorn, Starlette and the app load when `serve` runs.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import signal
from pathlib import Path
from typing import NamedTuple

from housing_predictor.errors import PipelineError

DEFAULT_HOST = "127.0.0.1"  # only this machine, unless asked: the image asks for 0.0.0.0
DEFAULT_PORT = 8080
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


def serve_command(args: argparse.Namespace) -> None:
    """Load and verify every model (a bad one is one line and exit 2, before any port opens), then
    serve until SIGTERM or SIGINT; a graceful shutdown exits 0."""
    from housing_predictor.server.app import app_factory, create_app, load_models

    config = settings(args)
    models = load_models(Path(args.models_dir))
    if config.invocations_model not in models:
        raise PipelineError(f"invocations model {config.invocations_model!r} does not exist: the models are {', '.join(models)}")

    import uvicorn

    if config.workers == 1:
        app = create_app(models, config.invocations_model, config.max_body_bytes, config.drain_seconds)
    else:  # each worker process builds its own app: the factory is what crosses the process boundary
        app = functools.partial(
            app_factory, args.models_dir, config.invocations_model, config.max_body_bytes, config.drain_seconds
        )
    server_config = uvicorn.Config(
        app,
        factory=config.workers > 1,
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
        from uvicorn.supervisors import Multiprocess

        Multiprocess(server_config, sockets=[server_config.bind_socket()]).run()


def add_parser(commands: argparse._SubParsersAction, formatter_class: type[argparse.HelpFormatter]) -> None:
    """The ``serve`` command, for predict.argument_parser."""
    parser = commands.add_parser(
        "serve",
        formatter_class=formatter_class,
        help="serve the models over HTTP (Open Inference Protocol V2, /invocations)",
        description="Serve every model over HTTP: the Open Inference Protocol (V2) REST API and MLflow/SageMaker's "
        "/ping and /invocations. Options override the SERVE_* environment variables (see README, Serving).",
    )
    parser.add_argument("--host", help=f"address to listen on (default: $SERVE_HOST or {DEFAULT_HOST})")
    parser.add_argument("--port", help=f"TCP port, 0 for any free one (default: $SERVE_PORT or {DEFAULT_PORT})")
    parser.add_argument("--workers", help="worker processes (default: $WEB_CONCURRENCY or 1)")
    parser.add_argument("--invocations-model", help="the model /invocations uses (default: $SERVE_INVOCATIONS_MODEL or float)")
    parser.set_defaults(run=serve_command)
