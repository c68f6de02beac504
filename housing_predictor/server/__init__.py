"""The HTTP server's app (app.py: Starlette routes, health, errors) and its wire formats
(protocol.py: V2 and /invocations bodies to feature arrays). `serve` (housing_predictor/serve.py)
runs it on uvicorn."""
