"""The HTTP server, imported only when `serve` runs: settings.py (environment, checked once; the
version), run.py (uvicorn, workers, SIGTERM), guard.py (connection limits), app.py (the Starlette
app: routes, health, metadata, errors), protocol.py (the API's bodies as msgspec Structs, and bodies
to feature arrays), openapi.py (the API's OpenAPI document, generated from them) and metrics.py
(Prometheus metrics at /metrics, summed across workers)."""
