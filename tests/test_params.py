"""params.yaml validation: a bad value in any section is one line naming the key, the value and
what is allowed; a stage stops on it with exit 2 before it writes anything. (The committed params
pass, and an unknown key is named as typed: tests/test_validate.py.)"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from housing_predictor.errors import PipelineError
from stages import params

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
    (
        "quantize.q8.scheme",
        "magic",
        "quantize.q8.scheme must be one of affine, published_a, published_b; got 'magic'",
    ),
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
    (
        "quantize.q8int.bias_correction",
        1,
        "quantize.q8int.bias_correction: input should be a valid boolean, got 1",
    ),
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
