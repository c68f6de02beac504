"""The HTTP app (Starlette): the Open Inference Protocol (V2) REST API, and MLflow/SageMaker's
``/ping`` and ``/invocations``, over the models the CLI loads.

In the shape of KServe's and MLServer's servers: a model (housing_predictor.models.Model, the
CLI's) is loaded once and predicts with the CLI's arithmetic; module-level handlers find the
models, the readiness and the limits on ``app.state``; the app owns routing, health, metadata and
errors. Every error is JSON ``{"error": "..."}`` with its 4xx; a client never sees a traceback (a
bug in our code is a 500 whose details go to the server's log only). Request bodies are decoded and
validated once, at the edge, against protocol.py's Structs; responses are encoded from them by
msgspec, the predictions by orjson (protocol.numbers), both writing a float64 as the shortest text
that reads back as the same bits; the API's OpenAPI document is generated from them too
(openapi.py, served at ``/v2/docs/dataplane.json``).

Handlers are ``async`` and compute inline: a prediction is microseconds of numpy, less than a
thread hand-off costs, so one worker process serves one request at a time at full speed and
throughput scales with worker processes (WEB_CONCURRENCY), not threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from pathlib import Path

import msgspec
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from housing_predictor.models import Model, PredictionOverflow, load_models
from housing_predictor.server import metrics, openapi, protocol
from housing_predictor.server.protocol import RequestError
from housing_predictor.server.settings import server_version

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
    ``drain_seconds`` (for load balancers to see readiness fail and route elsewhere; each response
    closes its connection: CloseWhenNotReady), then let uvicorn's graceful shutdown run: stop
    accepting, finish in-flight requests, exit."""
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


class CloseWhenNotReady:
    """While not ready (the drain after SIGTERM), every response says ``Connection: close``: a
    keep-alive client, or a load balancer's pooled connection, opens its next connection where the
    balancer now routes, instead of sending it here as the shutdown closes idle connections."""

    def __init__(self, app, readiness: Readiness) -> None:
        self.app, self.readiness = app, readiness

    async def __call__(self, scope, receive, send) -> None:
        if self.readiness.ready or scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_closing(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)


class StructResponse(JSONResponse):
    """A protocol.py Struct (or plain data) as JSON, by msgspec."""

    def render(self, content: object) -> bytes:
        return msgspec.json.encode(content)


class ClientGone(Exception):
    """The client hung up (or the guard closed its connection) before its body arrived."""


def predict(model: Model, X: np.ndarray) -> np.ndarray:
    """The CLI's predictions for rows ``X``; a row whose prediction overflows is a bad request."""
    try:
        predictions = model.predict(X)
    except PredictionOverflow as error:
        raise protocol.bad_request(str(error)) from None
    metrics.count_rows(model.name, len(predictions))
    return predictions


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request) -> bytearray:
    """The body, refused with 413 as soon as it is known to exceed the limit: from Content-Length
    before reading, or while reading a chunked body. One bytearray of the declared size, filled in
    place (a list of chunks and their join, or a bytearray grown in steps, would hold it twice)."""
    limit = request.app.state.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared)} bytes is over the limit of {limit} bytes")
    body, filled = bytearray(int(declared) if declared.isdigit() else 0), 0
    try:
        async for chunk in request.stream():
            end = filled + len(chunk)
            if end > limit:
                raise RequestError(413, f"request body is over the limit of {limit} bytes")
            body[filled:end] = chunk  # in place within the declared size; past it (chunked) it grows
            filled = end
    except ClientDisconnect:
        raise ClientGone from None
    del body[filled:]
    return body


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    # json's ASCII escapes: any message encodes, whatever the client put in it
    return Response(json.dumps({"error": message}), status_code=status, headers=headers, media_type="application/json")


async def request_error(request: Request, error: RequestError) -> Response:
    return error_response(error.status, error.message)


async def client_gone(request: Request, error: ClientGone) -> Response:
    return Response(status_code=400)  # never sent: the connection is gone (uvicorn drops it, logs nothing)


async def http_error(request: Request, error: HTTPException) -> Response:
    """Starlette's routing errors (404 no such path, 405 wrong method) in the protocol's shape."""
    messages = {
        404: f"no such endpoint: {request.url.path}",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }
    return error_response(error.status_code, messages.get(error.status_code, str(error.detail)), getattr(error, "headers", None))


async def internal_error(request: Request, error: Exception) -> Response:
    # A bug in our code (no client input causes one): Starlette logs the traceback, the client gets one line.
    return error_response(500, "internal server error")


def model_of(request: Request) -> Model:
    models = request.app.state.models
    name = request.path_params["model"]
    if name not in models:
        raise RequestError(404, f"model {name!r} does not exist: the models are {', '.join(models)}")
    model = models[name]
    version = request.path_params.get("version")
    if version is not None and version != model.version:
        raise RequestError(404, f"model {name!r} has no version {version!r}: its version is {model.version}")
    return model


def readiness_response(request: Request, body: msgspec.Struct) -> Response:
    # 503 when not ready: the status load balancers and Kubernetes probes read as "route elsewhere".
    return StructResponse(body, status_code=200 if request.app.state.readiness.ready else 503)


async def server_metadata(request: Request) -> Response:
    return StructResponse(protocol.ServerMetadata(SERVER_NAME, server_version(), extensions=[]))


async def live(request: Request) -> Response:
    return StructResponse(protocol.Live(live=True))


async def ready(request: Request) -> Response:
    return readiness_response(request, protocol.Ready(request.app.state.readiness.ready))


def model_metadata_body(model: Model) -> protocol.ModelMetadata:
    # parameter values are scalars in the protocol: the feature order as one string
    parameters = {"feature_order": ",".join(model.features), "datatypes": ",".join(protocol.DATATYPES)}
    return protocol.ModelMetadata(
        name=model.name,
        versions=[model.version],
        platform=PLATFORM,
        inputs=[protocol.TensorMetadata("features", "FP64", [-1, len(model.features)], parameters)],
        outputs=[protocol.TensorMetadata(protocol.OUTPUT_NAME, "FP64", [-1])],
        parameters={"scheme": model.saved.scheme, "bits": model.saved.bits},
    )


async def model_metadata(request: Request) -> Response:
    return StructResponse(model_metadata_body(model_of(request)))


async def model_ready(request: Request) -> Response:
    return readiness_response(request, protocol.ModelReady(model_of(request).name, request.app.state.readiness.ready))


async def infer(request: Request) -> Response:
    model = model_of(request)
    if media_type(request) not in ("", *JSON_TYPES):
        raise RequestError(415, f"content type {media_type(request)!r} is not supported: send application/json")
    X, request_id = protocol.v2_features(await read_body(request), model.features)
    return StructResponse(protocol.v2_response(model.name, model.version, predict(model, X), request_id))


async def ping(request: Request) -> Response:
    ready = request.app.state.readiness.ready
    return readiness_response(request, protocol.Ping("healthy" if ready else "shutting down"))


async def invocations(request: Request) -> Response:
    model = request.app.state.models[request.app.state.invocations_model]
    kind = media_type(request)
    if kind not in (*CSV_TYPES, *JSON_TYPES):
        raise RequestError(
            415, f"content type {kind or 'none'!r} is not supported: send text/csv (with a header) or application/json"
        )
    body = await read_body(request)
    if kind in CSV_TYPES:
        body = bytes(body)  # the reader's BytesIO shares a bytes object's memory (a bytearray's it copies)
        X = protocol.csv_features(body, model.features)
    else:
        X = protocol.invocation_features(body, model.features)
    return StructResponse(protocol.Predictions(protocol.numbers(predict(model, X))))


async def dataplane(request: Request) -> Response:
    """The OpenAPI document of this API, generated once per app (openapi.py)."""
    if request.app.state.openapi is None:
        models = request.app.state.models.values()
        values = {"model": [model.name for model in models], "version": sorted({model.version for model in models})}
        request.app.state.openapi = msgspec.json.encode(
            openapi.document(request.app.routes, SERVER_NAME, server_version(), values)
        )
    return Response(request.app.state.openapi, media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    readiness = app.state.readiness
    _unready_on_sigterm(readiness, app.state.drain_seconds)
    readiness.ready = True
    yield
    readiness.ready = False


MODEL_ROUTES = [
    route
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}")
    for route in (
        Route(prefix, model_metadata, methods=["GET"]),
        Route(f"{prefix}/ready", model_ready, methods=["GET"]),
        Route(f"{prefix}/infer", infer, methods=["POST"]),
    )
]
ROUTES = [
    Route("/v2", server_metadata, methods=["GET"]),
    Route("/v2/health/live", live, methods=["GET"]),
    Route("/v2/health/ready", ready, methods=["GET"]),
    *MODEL_ROUTES,
    Route("/ping", ping, methods=["GET"]),
    Route("/invocations", invocations, methods=["POST"]),
    Route("/metrics", metrics.scrape, methods=["GET"]),
    Route("/v2/docs/dataplane.json", dataplane, methods=["GET"]),  # where MLServer serves its own
]


def create_app(
    models: dict[str, Model],
    invocations_model: str,
    max_body_bytes: int,
    drain_seconds: float = 0.0,
) -> Starlette:
    """The ASGI app serving ``models``; /invocations predicts with ``invocations_model``."""
    readiness = Readiness()
    app = Starlette(
        routes=ROUTES,
        # outermost first: the metrics time and count what the client gets
        middleware=[Middleware(metrics.RequestMetrics), Middleware(CloseWhenNotReady, readiness=readiness)],
        exception_handlers={
            RequestError: request_error,
            ClientGone: client_gone,
            HTTPException: http_error,
            Exception: internal_error,
        },
        lifespan=lifespan,
    )
    app.state.models = models
    app.state.invocations_model = invocations_model
    app.state.max_body_bytes = max_body_bytes
    app.state.drain_seconds = drain_seconds
    app.state.readiness = readiness
    app.state.openapi = None
    return app


def app_factory(models_dir: str, invocations_model: str, max_body_bytes: int, drain_seconds: float) -> Starlette:
    """The app, loading the models: what each worker process calls (uvicorn's ``factory``)."""
    return create_app(load_models(Path(models_dir)), invocations_model, max_body_bytes, drain_seconds)
