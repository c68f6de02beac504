"""housing-mlops' predictor: what the image runs. numpy and safetensors only.

The model file format (artifacts), the linear model and its (de)quantization (linear,
quantization: plain functions, no I/O), every project path (paths), CSV in (csv_io) and out
(output), and the command line (predict). The DVC stages in stages/ import this package; the
Dockerfile copies it whole.
"""
