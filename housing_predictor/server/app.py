"""The HTTP app (Starlette): the Open Inference Protocol (V2) REST API, and MLflow/SageMaker's
``/ping`` and ``/invocations``, over the models the CLI loads.

Like KServe's and MLServer's servers: a model is loaded once, validated by the CLI's own loader
(housing_predictor.models), and predicts with the CLI's arithmetic; the app owns routing, health,
metadata and errors. Every error is JSON ``{"error": "..."}`` with its status; a client never
sees a traceback (a bug in our code is a 500 whose details go to the server's log only).

Handlers are ``async`` and compute inline: a prediction is microseconds of numpy, less than a
thread hand-off costs, so one worker process serves one request at a time at full speed and
throughput scales with worker processes (WEB_CONCURRENCY), not threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from housing_predictor.models import Model, PredictionOverflow, load_models
from housing_predictor.server import protocol
from housing_predictor.server.protocol import RequestError

SERVER_NAME = "housing-mlops"
PLATFORM = "housing-mlops-linear"  # numpy, the predictor's own model format
JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv",)
logger = logging.getLogger("uvicorn.error")


class Readiness:
    """Ready once the app has started; not ready from the first SIGTERM on, so that a load balancer
    stops sending requests while the ones in flight complete."""

    def __init__(self) -> None:
        self.ready = False


def _unready_on_sigterm(readiness: Readiness, drain_seconds: float) -> None:
    """Put a handler in front of the server's own SIGTERM handler (uvicorn installs it with
    signal.signal before the app starts): mark the app not ready, keep serving for
    ``drain_seconds`` (for the orchestrator to see readiness fail and route elsewhere), then let
    uvicorn's graceful shutdown run: stop accepting, finish in-flight requests, exit."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach only the main thread; then the server handles none either
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: object) -> None:
        if not readiness.ready:  # a second SIGTERM: shut down now
            server_handler(signum, frame)
            return
        readiness.ready = False
        logger.info("SIGTERM: not ready; shutting down in %g s, once in-flight requests complete", drain_seconds)
        loop.call_soon_threadsafe(loop.call_later, drain_seconds, server_handler, signum, None)

    signal.signal(signal.SIGTERM, on_sigterm)


def predict(model: Model, X: np.ndarray) -> np.ndarray:
    """The CLI's predictions for rows ``X``; a row whose prediction overflows is a bad request."""
    try:
        return model.predict(X)
    except PredictionOverflow as error:
        raise protocol.bad_request(str(error)) from None


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes: from
    Content-Length before reading, or while reading a chunked body."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared)} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def request_error(request: Request, error: RequestError) -> JSONResponse:
    return error_response(error.status, error.message)


async def http_error(request: Request, error: HTTPException) -> JSONResponse:
    """Starlette's routing errors (404 no such path, 405 wrong method) in the protocol's shape."""
    messages = {
        404: f"no such endpoint: {request.url.path}",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }
    return error_response(error.status_code, messages.get(error.status_code, str(error.detail)), getattr(error, "headers", None))


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    # Starlette logs the traceback to the server's log; the client gets one line.
    return error_response(500, "internal server error")


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


def create_app(
    models: dict[str, Model],
    invocations_model: str,
    max_body_bytes: int,
    drain_seconds: float = 0.0,
) -> Starlette:
    """The ASGI app serving ``models``; /invocations predicts with ``invocations_model``."""
    readiness = Readiness()

    def model_of(request: Request) -> Model:
        name = request.path_params["model"]
        if name not in models:
            raise RequestError(404, f"model {name!r} does not exist: the models are {', '.join(models)}")
        model = models[name]
        version = request.path_params.get("version")
        if version is not None and version != model.version:
            raise RequestError(404, f"model {name!r} has no version {version!r}: its version is {model.version}")
        return model

    def readiness_response(body: dict) -> JSONResponse:
        # 503 when not ready: the status load balancers and Kubernetes probes read as "route elsewhere".
        return JSONResponse(body, status_code=200 if readiness.ready else 503)

    async def server_metadata(request: Request) -> JSONResponse:
        return JSONResponse({"name": SERVER_NAME, "version": os.environ.get("IMAGE_VERSION") or "unknown", "extensions": []})

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> JSONResponse:
        return readiness_response({"ready": readiness.ready})

    async def model_metadata(request: Request) -> JSONResponse:
        model = model_of(request)
        return JSONResponse(
            {
                "name": model.name,
                "versions": [model.version],
                "platform": PLATFORM,
                "inputs": [
                    {
                        "name": "features",
                        "datatype": "FP64",
                        "shape": [-1, len(model.features)],
                        # parameter values are scalars in the protocol: the order as one string
                        "parameters": {"feature_order": ",".join(model.features), "datatypes": ",".join(protocol.DATATYPES)},
                    }
                ],
                "outputs": [{"name": protocol.OUTPUT_NAME, "datatype": "FP64", "shape": [-1]}],
                "parameters": {"scheme": model.saved.scheme, "bits": model.saved.bits},
            }
        )

    async def model_ready(request: Request) -> JSONResponse:
        return readiness_response({"name": model_of(request).name, "ready": readiness.ready})

    async def infer(request: Request) -> JSONResponse:
        model = model_of(request)
        if media_type(request) not in ("", *JSON_TYPES):
            raise RequestError(415, f"content type {media_type(request)!r} is not supported: send application/json")
        document = protocol.parse_json(await read_body(request, max_body_bytes))
        X, request_id = protocol.v2_features(document, model.features)
        return JSONResponse(protocol.v2_response(model.name, model.version, predict(model, X), request_id))

    async def ping(request: Request) -> Response:
        return readiness_response({"status": "healthy" if readiness.ready else "shutting down"})

    async def invocations(request: Request) -> Response:
        model = models[invocations_model]
        kind = media_type(request)
        if kind not in (*CSV_TYPES, *JSON_TYPES):
            raise RequestError(
                415, f"content type {kind or 'none'!r} is not supported: send text/csv (with a header) or application/json"
            )
        body = await read_body(request, max_body_bytes)
        if kind in CSV_TYPES:
            X = protocol.csv_features(body, model.features)
        else:
            X = protocol.invocation_features(protocol.parse_json(body), model.features)
        return JSONResponse({"predictions": predict(model, X).tolist()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        _unready_on_sigterm(readiness, drain_seconds)
        readiness.ready = True
        yield
        readiness.ready = False

    model_routes = []
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        model_routes += [
            Route(prefix, model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", model_ready, methods=["GET"]),
            Route(f"{prefix}/infer", infer, methods=["POST"]),
        ]
    return Starlette(
        routes=[
            Route("/v2", server_metadata, methods=["GET"]),
            Route("/v2/health/live", live, methods=["GET"]),
            Route("/v2/health/ready", ready, methods=["GET"]),
            *model_routes,
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ],
        exception_handlers={RequestError: request_error, HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )


def app_factory(models_dir: str, invocations_model: str, max_body_bytes: int, drain_seconds: float) -> Starlette:
    """The app, loading the models: what each worker process calls (uvicorn's ``factory``)."""
    return create_app(load_models(Path(models_dir)), invocations_model, max_body_bytes, drain_seconds)
