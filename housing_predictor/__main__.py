"""`python -m housing_predictor`: the image's entrypoint (housing_predictor/cli.py)."""

from housing_predictor.cli import main
from housing_predictor.errors import run_guarded

run_guarded(main)
