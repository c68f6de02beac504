"""The HTTP server, loaded only when `serve` runs: settings.py (options and environment, checked
once; also the `serve` command's options), run.py (uvicorn, workers, SIGTERM), app.py (the
Starlette app: routes, health, metadata, errors) and protocol.py (V2 and /invocations bodies to
feature arrays)."""
