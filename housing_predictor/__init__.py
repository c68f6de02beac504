"""housing-mlops' predictor: what the image runs, copied whole by the Dockerfile. numpy and
safetensors only, but for the HTTP server's libraries (requirements-runtime.txt), which `serve`
alone imports.

- cli: the command line (`python -m housing_predictor`): predict, selfcheck, serve, --version
- models: a model loaded by name, verified, predicting (the CLI, the server and evaluate share it)
- modelfile: the model file format (safetensors), its checksum and structure checks
- linear, quantization, integer: the numerical core, plain functions over arrays, no I/O
- csv_io, output: CSV in, predictions out; files: atomic writes and JSON; errors: one-line exits
- paths: every path the pipeline reads or writes, and the models it builds
- server/: the HTTP server; healthcheck: the image's HEALTHCHECK
The DVC stages in stages/ import this package.
"""
