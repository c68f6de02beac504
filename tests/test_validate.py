"""Stage validate refuses, before any stage runs, what a later stage would refuse: each section as
its model (tests/test_params.py has the messages) and the limits that need the data set's size,
with the words the later stage would use. It writes its stamp only when all is valid."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from housing_predictor import paths
from housing_predictor.errors import PipelineError
from stages import evaluate, load_data, params, validate

from conftest import REPO, run

COMMITTED = YAML(typ="safe").load((REPO / "params.yaml").read_text())


def written(folder: Path, section: str, key: str, value) -> Path:
    document = {**COMMITTED, section: {**COMMITTED[section], key: value}}
    with open(folder / "params.yaml", "w") as handle:
        YAML(typ="safe").dump(document, handle)
    return folder / "params.yaml"


def test_the_committed_params_pass():
    assert isinstance(validate.validate(REPO / "params.yaml"), params.Params)


def test_a_split_that_leaves_too_few_rows_is_refused_as_load_data_refuses_it(tmp_path):
    path = written(tmp_path, "load_data", "test_size", 0.001)
    with pytest.raises(PipelineError) as refused:
        validate.validate(path)
    with pytest.raises(PipelineError) as later:  # what load-data says on the real data set's rows
        load_data.test_rows(params.load(path).load_data, load_data.EXPECTED_ROWS)
    assert str(refused.value) == str(later.value)
    assert str(refused.value).startswith("params.yaml: load_data.test_size must leave at least 100 of the 20,640 rows")


def test_more_selfcheck_rows_than_the_split_holds_are_refused_as_evaluate_refuses_them(tmp_path):
    test_rows = load_data.test_rows(params.load(REPO / "params.yaml").load_data)
    path = written(tmp_path, "evaluate", "selfcheck_rows", test_rows + 1)
    with pytest.raises(PipelineError) as refused:
        validate.validate(path)
    with pytest.raises(PipelineError) as later:
        evaluate.check_selfcheck_rows(params.load(path).evaluate, test_rows)
    expected = f"params.yaml: evaluate.selfcheck_rows must be at most the {test_rows} test rows, got {test_rows + 1}"
    assert str(refused.value) == str(later.value) == expected
    written(tmp_path, "evaluate", "selfcheck_rows", test_rows)
    validate.validate(path)  # the whole split is still a valid sample


def test_the_stage_writes_its_stamp_only_when_params_are_valid(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    (tmp_path / "data").mkdir()
    written(tmp_path, "train", "standardise", True)
    refused = run([sys.executable, "-m", "stages.validate"], cwd=tmp_path, check=False, env=env)
    assert refused.returncode == 2
    assert refused.stderr == "error: params.yaml: train: unknown key 'standardise' (allowed keys: standardize)\n"
    assert not (tmp_path / paths.PARAMS_STAMP).exists()
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    run([sys.executable, "-m", "stages.validate"], cwd=tmp_path, env=env)
    assert (tmp_path / paths.PARAMS_STAMP).read_bytes() == validate.STAMP_TEXT


def renamed(folder: Path, old: str, new: str) -> Path:
    """params.yaml with its first line holding key ``old`` renamed ``new`` (a typo as it is made)."""
    lines = (REPO / "params.yaml").read_text().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.lstrip().startswith(f"{old}:"))
    lines[at] = lines[at].replace(f"{old}:", f"{new}:", 1)
    (folder / "params.yaml").write_text("".join(lines))
    return folder / "params.yaml"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("random_state", "random_stat", "load_data: unknown key 'random_stat' (allowed keys: test_size, random_state)"),
        ("train", "trian", "unknown section 'trian' (allowed sections: load_data, train, quantize, evaluate, sweep)"),
        ("scheme", "csheme", "quantize.q8.scheme is missing (one of affine, published_a, published_b); found 'csheme', "),
    ],
)
def test_a_misspelt_key_is_named_as_typed(tmp_path, old, new, message):
    """A typo makes a key unknown and another missing: the message names the one typed (and, for a
    scheme, the keys found, so the typo shows)."""
    with pytest.raises(PipelineError) as refused:
        validate.validate(renamed(tmp_path, old, new))
    assert str(refused.value).startswith(f"params.yaml: {message}")
