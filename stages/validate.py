"""Stage validate: all of params.yaml, checked before any other stage runs.

DVC deletes a stage's outputs before it runs the stage (unless they are `persist`, which costs the
stage its run-cache), so a bad value must stop `dvc repro` before the first stage that would lose
its outputs. This stage comes first: it depends on the whole of params.yaml (a misspelt section
too), every stage that reads params.yaml depends on its stamp, and it refuses what a later stage
would: each section as its pydantic model (stages/params.py), and the two limits that need the
data set's size (load-data's split sides, evaluate's selfcheck rows). No scikit-learn, no data.

Writes data/params.valid, a stamp whose content never changes: a valid edit re-runs this stage and
then only the stages whose own section changed.
"""

from __future__ import annotations

from pathlib import Path

from housing_predictor import paths
from housing_predictor.errors import run_guarded
from housing_predictor.files import write_atomic
from stages import params
from stages.evaluate import check_selfcheck_rows
from stages.load_data import test_rows

STAMP_TEXT = b"params.yaml passed stage validate (python -m stages.validate)\n"


def validate(path: Path = paths.PARAMS) -> params.Params:
    """Every section of ``path``, validated; a PipelineError names the first bad key or value."""
    document = params.load(path)
    check_selfcheck_rows(document.evaluate, test_rows(document.load_data))
    return document


def main() -> None:
    validate()
    write_atomic(paths.PARAMS_STAMP, STAMP_TEXT)


if __name__ == "__main__":
    run_guarded(main)
