"""Running `serve`: the models loaded and verified, then uvicorn serving the app until SIGTERM.

Imported only when `serve` runs (the CLI's other commands never load uvicorn or Starlette).
"""

from __future__ import annotations

import argparse
import functools
import signal
from pathlib import Path

import uvicorn
from uvicorn.supervisors import Multiprocess

from housing_predictor.errors import PipelineError
from housing_predictor.models import load_models
from housing_predictor.server.app import app_factory, create_app
from housing_predictor.server.settings import settings


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
