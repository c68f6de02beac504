"""The HTTP server, loaded only when `serve` runs (housing_predictor/serve.py is the command):
run.py (settings from options and environment, uvicorn, workers, SIGTERM), app.py (the Starlette
app: routes, health, metadata, errors) and protocol.py (V2 and /invocations bodies to feature arrays)."""
