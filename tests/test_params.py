"""params.yaml validation: a bad value or a misspelt key in any section is one line naming it and
what is allowed; a stage stops on it with exit 2 before it writes anything. Stage validate refuses,
before any stage runs, what a later stage would, with that stage's words."""

from __future__ import annotations

import copy
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML

from housing_predictor.errors import PipelineError
from stages import evaluate, load_data, params, validate

from conftest import REPO, run

COMMITTED = YAML(typ="safe").load((REPO / "params.yaml").read_text())


def changed(dotted: str, value) -> dict:
    """The committed params with ``dotted`` (section.key) set to ``value`` (None: deleted)."""
    document = copy.deepcopy(COMMITTED)
    *parents, key = dotted.split(".")
    node = document
    for part in parents:
        node = node[part]
    if value is None:
        del node[key]
    else:
        node[key] = value
    return document


def write(folder: Path, document: dict) -> Path:
    path = folder / "params.yaml"
    with open(path, "w") as handle:
        YAML(typ="safe").dump(document, handle)
    return path


BAD = [
    ("load_data.test_size", 1.5, "load_data.test_size: input should be less than 1, got 1.5"),
    ("load_data.test_size", True, "load_data.test_size: input should be a valid number, got True"),
    ("load_data.test_size", "0.2", "load_data.test_size: input should be a valid number, got '0.2'"),
    ("load_data.random_state", -1, "load_data.random_state: input should be greater than or equal to 0, got -1"),
    ("load_data.random_state", 4.5, "load_data.random_state: input should be a valid integer, got 4.5"),
    ("quantize.q8.scheme", "magic", "quantize.q8.scheme must be one of affine, published_a, published_b; got 'magic'"),
    ("quantize.q16.rounding", "up", "quantize.q16.rounding: input should be 'nearest' or 'truncate', got 'up'"),
    ("quantize.q8.scale_search", 3, "quantize.q8.scale_search: input should be 'none' or 'mse', got 3"),
    ("quantize.q16.bias_correction", None, "quantize.q16.bias_correction is missing"),
    # a published scheme is fixed arithmetic: the affine scheme's keys are refused, not ignored
    (
        "quantize.q8.scheme",
        "published_b",
        "quantize.q8: unknown keys 'bias_correction', 'rounding', 'scale_search', 'signed', 'symmetric' (allowed keys: scheme)",
    ),
    (
        "quantize.q8int.granularity",
        "per_row",
        "quantize.q8int.granularity: input should be 'per_feature' or 'per_tensor', got 'per_row'",
    ),
    ("quantize.q8int.bias_correction", 1, "quantize.q8int.bias_correction: input should be a valid boolean, got 1"),
    ("evaluate.selfcheck_rows", 0, "evaluate.selfcheck_rows: input should be greater than or equal to 1, got 0"),
    ("sweep.max_bits", 17, "sweep.max_bits: input should be less than or equal to 16, got 17"),
    ("sweep.min_bits", 9, "sweep: min_bits (9) must not exceed max_bits (8)"),
    ("sweep.schemes", {}, "sweep.schemes: dictionary should have at least 1 item after validation, not 0, got {}"),
    ("sweep.schemes.Bad", {"scheme": "published_a"}, "sweep.schemes.Bad: string should match pattern"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=[f"{key}={value!r}" for key, value, _ in BAD])
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(tmp_path, key, value, message):
    document = changed(key, value)
    if key == "sweep.min_bits":
        document["sweep"]["max_bits"] = 8
    path = write(tmp_path, document)
    with pytest.raises(PipelineError) as error:
        params.load(path)
    assert str(error.value).startswith(f"params.yaml: {message}")
    assert "\n" not in str(error.value)


def sections(node: dict, prefix: str = ""):
    """The dotted names of params.yaml's sections that hold a value (load_data, quantize.q8, sweep...)."""
    for key, value in node.items():
        if isinstance(value, dict):
            if not all(isinstance(item, dict) for item in value.values()):
                yield f"{prefix}{key}"
            yield from sections(value, f"{prefix}{key}.")


@pytest.mark.parametrize("section", ["", *sections(COMMITTED)])
def test_a_misspelt_key_in_any_section_is_refused_by_name(tmp_path, section):
    """A misspelt section too ('' is the file's top). tests/test_pipeline.py: it stops `dvc repro`."""
    path = write(tmp_path, changed(f"{section}.misspelt_key" if section else "misspelt_key", 1))
    message = f"{section}: unknown key 'misspelt_key' (allowed keys: " if section else "unknown section 'misspelt_key' ("
    with pytest.raises(PipelineError, match=rf"^params.yaml: {re.escape(message)}"):
        validate.validate(path)


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


@pytest.mark.parametrize(
    ("test_size", "rows"), [(1e-300, "1 test and 20639 training rows"), (0.99999, "20640 test and 0 training rows")]
)
def test_a_split_that_leaves_a_side_nearly_empty_is_refused_as_load_data_refuses_it(tmp_path, test_size, rows):
    path = write(tmp_path, changed("load_data.test_size", test_size))
    with pytest.raises(PipelineError) as refused:
        validate.validate(path)
    with pytest.raises(PipelineError) as later:  # load-data, on as many rows as the data set has
        load_data.split(np.zeros((load_data.EXPECTED_ROWS, 8)), np.zeros(load_data.EXPECTED_ROWS), params.load(path).load_data)
    assert (
        str(refused.value)
        == str(later.value)
        == (
            "params.yaml: load_data.test_size must leave at least 100 of the 20,640 rows on each side of the split "
            f"(0.004845 to 0.995155), got {test_size!r} ({rows})"
        )
    )


def test_more_selfcheck_rows_than_the_split_holds_are_refused_as_evaluate_refuses_them(tmp_path):
    test_rows = load_data.test_rows(params.load(REPO / "params.yaml").load_data)
    path = write(tmp_path, changed("evaluate.selfcheck_rows", test_rows + 1))
    with pytest.raises(PipelineError) as refused:
        validate.validate(path)
    with pytest.raises(PipelineError) as later:
        evaluate.check_selfcheck_rows(params.load(path).evaluate, test_rows)
    expected = f"params.yaml: evaluate.selfcheck_rows must be at most the {test_rows} test rows, got {test_rows + 1}"
    assert str(refused.value) == str(later.value) == expected
    validate.validate(write(tmp_path, changed("evaluate.selfcheck_rows", test_rows)))  # the whole split is a valid sample


def test_params_are_read_as_dvc_reads_them(tmp_path):
    """YAML 1.2, as DVC (ruamel.yaml) records it in dvc.lock: `yes` is a string, refused as a flag;
    `5e-1` is a number; a repeated key is an error, not a silent last-one-wins."""
    text = (REPO / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("standardize: true", "standardize: yes"))
    with pytest.raises(PipelineError, match=r"^params.yaml: train.standardize: input should be a valid boolean, got 'yes'$"):
        params.load(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(text.replace("test_size: 0.2", "test_size: 5e-1"))
    assert params.load(tmp_path / "params.yaml").load_data.test_size == 0.5
    (tmp_path / "params.yaml").write_text(text.replace("random_state: 42", "random_state: 42\n  random_state: 7"))
    with pytest.raises(PipelineError, match=r"is not valid YAML"):
        params.load(tmp_path / "params.yaml")


def test_unreadable_params_and_missing_sections_are_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("load_data: [unclosed\n")
    with pytest.raises(PipelineError, match=r"is not valid YAML"):
        params.load(tmp_path / "params.yaml")
    with pytest.raises(PipelineError, match=r"cannot read"):
        params.load(tmp_path / "absent.yaml")
    with pytest.raises(PipelineError, match=r"^params.yaml: evaluate is missing$"):
        params.load(write(tmp_path, changed("evaluate", None)))


STAGES = [
    (["stages.validate"], "train.standardize", "yes"),  # all of params.yaml (its stamp when valid: every dvc repro)
    (["stages.load_data"], "load_data.test_size", 0),
    (["stages.train"], "train.standardize", 1),
    (["stages.quantize", "--bits", "8"], "quantize.q8.rounding", "up"),
    (["stages.quantize", "--bits", "16"], "quantize.q16.signed", "no"),
    (["stages.quantize_int"], "quantize.q8int.calibration", "entropy"),
    (["stages.evaluate"], "evaluate.selfcheck_rows", -1),
    (["stages.sweep"], "sweep.max_bits", 32),
]


@pytest.mark.parametrize(("module", "key", "value"), STAGES, ids=[key for _, key, _ in STAGES])
def test_each_stage_stops_on_its_bad_param_with_one_line_and_writes_nothing(tmp_path, module, key, value):
    """Validation is each stage's first act: it needs no data, and nothing is written."""
    write(tmp_path, changed(key, value))
    result = run([sys.executable, "-m", *module], cwd=tmp_path, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: params.yaml: {key}") and result.stderr.count("\n") == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
