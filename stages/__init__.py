"""housing-mlops: the stage code run by dvc.yaml, and the numpy-only core the predictor reuses."""
