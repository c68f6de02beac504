"""Running `serve`: the models loaded and verified, then uvicorn serving the app until SIGTERM.

Imported only when `serve` runs (the CLI's other commands never load uvicorn or Starlette).
"""

from __future__ import annotations

import argparse
import functools
import signal
from pathlib import Path

import uvicorn

from housing_predictor.errors import PipelineError
from housing_predictor.models import load_models
from housing_predictor.server.app import app_factory, create_app
from housing_predictor.server.guard import GuardedConfig
from housing_predictor.server.metrics import Supervisor, multiprocess_directory
from housing_predictor.server.settings import Settings, settings


def server_config(config: Settings, app: object) -> GuardedConfig:
    """uvicorn's configuration for ``app`` under ``config``: its httptools protocol (the C parser,
    never a silent fallback to h11) with the guard's limits (guard.py). The benchmark serves its
    floors with this too, so that they run on the same server as ours."""
    return GuardedConfig(
        app,
        max_header_bytes=config.max_header_bytes,
        header_timeout=config.header_timeout,
        body_timeout=config.body_timeout,
        timeout_keep_alive=config.keep_alive_timeout,
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


def run(uvicorn_config: GuardedConfig, workers: int) -> None:
    """Serve until SIGTERM or SIGINT; a graceful shutdown returns (exit 0)."""
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully, for an
    # embedding program to act on; for us a graceful shutdown is the normal end: exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    with multiprocess_directory(workers):  # before the workers start: they read it as they import
        if workers == 1:
            uvicorn.Server(uvicorn_config).run()
        else:
            Supervisor(uvicorn_config, sockets=[uvicorn_config.bind_socket()]).run()


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
    run(server_config(config, app), config.workers)
