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

This module is imported by every CLI start (predict.argument_parser), so it holds the command's
options only; the settings, uvicorn, Starlette and the app load when `serve` runs
(housing_predictor/server/run.py).
"""

from __future__ import annotations

import argparse

DEFAULT_HOST = "127.0.0.1"  # only this machine, unless asked: the image asks for 0.0.0.0
DEFAULT_PORT = 8080


def serve_command(args: argparse.Namespace) -> None:
    from housing_predictor.server.run import serve

    serve(args)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``serve`` command, for predict.argument_parser."""
    parser = commands.add_parser(
        "serve",
        help="serve the models over HTTP (Open Inference Protocol V2, /invocations)",
        description="Serve every model over HTTP: the Open Inference Protocol (V2) REST API and MLflow/SageMaker's "
        "/ping and /invocations. Options override the SERVE_* environment variables (see README, Serving).",
    )
    parser.add_argument("--host", help=f"address to listen on (default: $SERVE_HOST or {DEFAULT_HOST})")
    parser.add_argument("--port", help=f"TCP port, 0 for any free one (default: $SERVE_PORT or {DEFAULT_PORT})")
    parser.add_argument("--workers", help="worker processes (default: $WEB_CONCURRENCY or 1)")
    parser.add_argument("--invocations-model", help="the model /invocations uses (default: $SERVE_INVOCATIONS_MODEL or float)")
    parser.set_defaults(run=serve_command)
