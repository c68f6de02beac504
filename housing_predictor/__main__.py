"""`python -m housing_predictor`: the image's entrypoint."""

from housing_predictor.predict import entrypoint

entrypoint()
