"""The server's OpenAPI 3.1 document, generated: the paths from the app's routes, the bodies from
protocol.py's Structs (msgspec.json.schema_components), so the document says what the server
checks. Served at ``GET /v2/docs/dataplane.json`` (where MLServer serves its own); the slow tests
run schemathesis against the running server from it.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import NamedTuple

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST

from housing_predictor.server import protocol as p

JSON, CSV = "application/json", "text/csv"


class Operation(NamedTuple):
    summary: str
    responses: dict[int, object]  # status: the body's type (a Struct; str for text)
    request: dict[str, object] = {}  # content type: the body's type
    media_type: str = JSON  # of the responses


# Per handler (app.ROUTES' endpoints): a route whose handler is missing here fails the document.
# Errors from the connection guard (408, 414, 431, 503 when all connections are busy) come before
# any route and are listed in docs/serving.md.
OPERATIONS = {
    "server_metadata": Operation("Server metadata", {200: p.ServerMetadata}),
    "live": Operation("Server live (the liveness probe)", {200: p.Live}),
    "ready": Operation("Server ready (the readiness probe; 503 from SIGTERM on)", {200: p.Ready, 503: p.Ready}),
    "model_metadata": Operation("Model metadata", {200: p.ModelMetadata, 404: p.Error}),
    "model_ready": Operation("Model ready", {200: p.ModelReady, 503: p.ModelReady, 404: p.Error}),
    "infer": Operation(
        "Inference: one [N, 8] input in feature order, or one [N] input per feature",
        {200: p.InferenceResponse, 400: p.Error, 404: p.Error, 413: p.Error, 415: p.Error},
        {JSON: p.InferenceRequest},
    ),
    "ping": Operation("MLflow/SageMaker health", {200: p.Ping, 503: p.Ping}),
    "invocations": Operation(
        "MLflow/SageMaker scoring with the invocations model: CSV with a header, or JSON",
        {200: p.Predictions, 400: p.Error, 413: p.Error, 415: p.Error},
        {JSON: p.Invocation, CSV: str},
    ),
    "dataplane": Operation("This document (OpenAPI 3.1)", {200: dict}),
    "scrape": Operation("Prometheus metrics (metrics.py)", {200: str}, media_type=CONTENT_TYPE_LATEST),
}


def document(routes: list, title: str, version: str, path_values: dict[str, list[str]]) -> dict:
    """The OpenAPI document of ``routes`` (Starlette Routes whose handlers OPERATIONS lists);
    ``path_values``: the values each path parameter may take (the models, their versions)."""
    types = sorted(
        {t for operation in OPERATIONS.values() for t in [*operation.responses.values(), *operation.request.values()]},
        key=lambda t: t.__name__,
    )
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    schema_of = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict] = {}
    for route in routes:
        operation = OPERATIONS[route.endpoint.__name__]
        for method in sorted(route.methods - {"HEAD"}):
            entry = {
                "summary": operation.summary,
                "operationId": f"{route.endpoint.__name__}{'_version' if '{version}' in route.path else ''}",
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string", "enum": path_values[name]}}
                    for name in re.findall(r"{(\w+)}", route.path)
                ],
                "responses": {
                    str(status): {
                        "description": HTTPStatus(status).phrase,
                        "content": {operation.media_type if status < 400 else JSON: {"schema": schema_of[body]}},
                    }
                    for status, body in operation.responses.items()
                },
            }
            if operation.request:
                content = {kind: {"schema": schema_of[body]} for kind, body in operation.request.items()}
                entry["requestBody"] = {"required": True, "content": content}
            paths.setdefault(route.path, {})[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
