"""params.yaml validation: every bad value stops its stage with one line naming the key and what
is allowed, and exit code 2; nothing is written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from housing_predictor.errors import PipelineError
from stages import params

from conftest import REPO, run

DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text())


def write_params(folder: Path, document: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def with_value(section: str, key: str, value) -> dict:
    document = yaml.safe_load((REPO / "params.yaml").read_text())
    node = document
    for part in section.split("."):
        node = node[part]
    node[key] = value
    return document


def test_defaults_reproduce_the_published_setup():
    path = REPO / "params.yaml"
    assert params.load_data_params(path) == params.LoadDataParams(test_size=0.2, random_state=42)
    assert params.train_params(path).standardize is True
    for name in ("q8", "q16"):
        assert params.quantize_params(name, path).scheme == "affine"
    assert params.evaluate_params(path).selfcheck_rows > 0


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("load_data", "test_size", 1.5, "load_data.test_size must be a number strictly between 0 and 1, got 1.5"),
        ("load_data", "test_size", 0, "load_data.test_size must be a number strictly between 0 and 1, got 0"),
        ("load_data", "test_size", "0.2", "load_data.test_size must be a number strictly between 0 and 1, got '0.2'"),
        ("load_data", "test_size", True, "load_data.test_size must be a number strictly between 0 and 1, got True"),
        (
            "load_data",
            "test_size",
            1e-300,
            "load_data.test_size must be a fraction that leaves at least 100 of the 20,640 rows on each side of the split "
            "(0.004845 to 0.995155), got 1e-300 (1 test and 20639 training rows)",
        ),
        (
            "load_data",
            "test_size",
            0.99999,
            "load_data.test_size must be a fraction that leaves at least 100 of the 20,640 rows on each side of the split "
            "(0.004845 to 0.995155), got 0.99999 (20640 test and 0 training rows)",
        ),
        ("load_data", "random_state", -1, "load_data.random_state must be an integer from 0 to 4294967295, got -1"),
        ("load_data", "random_state", 4.5, "load_data.random_state must be an integer from 0 to 4294967295, got 4.5"),
        ("load_data", "random_state", "seven", "load_data.random_state must be an integer from 0 to 4294967295, got 'seven'"),
        ("train", "standardize", "yes", "train.standardize must be true or false, got 'yes'"),
        ("quantize.q8", "scheme", "magic", "quantize.q8.scheme must be one of affine, published_a, published_b; got 'magic'"),
        ("quantize.q16", "rounding", "up", "quantize.q16.rounding must be one of nearest, truncate; got 'up'"),
        ("quantize.q8", "scale_search", 3, "quantize.q8.scale_search must be one of none, mse; got 3"),
        ("evaluate", "selfcheck_rows", 0, "evaluate.selfcheck_rows must be an integer from 1 to 4128, got 0"),
    ],
)
def test_bad_value_is_named_with_allowed_values(tmp_path, section, key, value, expected):
    path = write_params(tmp_path, with_value(section, key, value))
    loader = {"load_data": params.load_data_params, "train": params.train_params, "evaluate": params.evaluate_params}
    with pytest.raises(PipelineError) as error:
        if section.startswith("quantize."):
            params.quantize_params(section.split(".")[1], path)
        else:
            loader[section](path)
    assert str(error.value) == f"params.yaml: {expected}"


def test_misspelt_key_is_named_with_the_allowed_keys(tmp_path):
    document = yaml.safe_load((REPO / "params.yaml").read_text())
    document["load_data"]["tset_size"] = document["load_data"].pop("test_size")
    with pytest.raises(PipelineError, match=r"load_data has unknown key 'tset_size' \(allowed keys: test_size, random_state\)"):
        params.load_data_params(write_params(tmp_path, document))


def test_missing_key_and_section_are_named(tmp_path):
    document = yaml.safe_load((REPO / "params.yaml").read_text())
    del document["quantize"]["q16"]["bias_correction"]
    del document["evaluate"]
    path = write_params(tmp_path, document)
    with pytest.raises(PipelineError, match=r"quantize.q16.bias_correction is missing"):
        params.quantize_params("q16", path)
    with pytest.raises(PipelineError, match=r"section evaluate is missing"):
        params.evaluate_params(path)


def test_smallest_and_largest_usable_test_size_are_accepted(tmp_path):
    for test_size, n_test in ((100 / 20_640, 100), (1 - 100 / 20_640, 20_540)):
        path = write_params(tmp_path, with_value("load_data", "test_size", test_size))
        assert params.n_test_rows(params.load_data_params(path).test_size) == n_test


def test_params_are_read_as_dvc_reads_them(tmp_path):
    """YAML 1.2, as DVC (ruamel.yaml) records it in dvc.lock: `yes` is a string, refused as a flag;
    `1e-3` is a number; a repeated key is an error, not a silent last-one-wins."""
    text = (REPO / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("standardize: true", "standardize: yes"))
    with pytest.raises(PipelineError, match=r"^params.yaml: train.standardize must be true or false, got 'yes'$"):
        params.train_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(text.replace("test_size: 0.2", "test_size: 5e-1"))
    assert params.load_data_params(tmp_path / "params.yaml").test_size == 0.5
    (tmp_path / "params.yaml").write_text(text.replace("random_state: 42", "random_state: 42\n  random_state: 7"))
    with pytest.raises(PipelineError, match=r"is not valid YAML"):
        params.load_data_params(tmp_path / "params.yaml")


def test_unreadable_params_file_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("load_data: [unclosed\n")
    with pytest.raises(PipelineError, match=r"is not valid YAML"):
        params.load_data_params(tmp_path / "params.yaml")
    with pytest.raises(PipelineError, match=r"cannot read"):
        params.load_data_params(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("module", "section", "key", "value"),
    [
        ("stages.load_data", "load_data", "test_size", 1.5),
        ("stages.load_data", "load_data", "test_size", 0),
        ("stages.load_data", "load_data", "random_state", -3),
        ("stages.load_data", "load_data", "test_size", "abc"),
        ("stages.load_data", "load_data", "test_size", 1e-300),
        ("stages.load_data", "load_data", "test_size", 0.99999),
        ("stages.train", "train", "standardize", 1),
        ("stages.evaluate", "evaluate", "selfcheck_rows", -1),
    ],
)
def test_stage_exits_2_with_one_line_and_writes_nothing(tmp_path, module, section, key, value):
    write_params(tmp_path, with_value(section, key, value))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = run([sys.executable, "-m", module], cwd=tmp_path, check=False, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: params.yaml: {section}.{key} must be ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_quantize_stage_rejects_bad_scheme(tmp_path):
    write_params(tmp_path, with_value("quantize.q8", "scheme", "published_c"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = run([sys.executable, "-m", "stages.quantize", "--bits", "8"], cwd=tmp_path, check=False, env=env)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: params.yaml: quantize.q8.scheme must be one of affine, published_a, published_b; got 'published_c'"
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("granularity", "per_row", "quantize.q8int.granularity must be one of per_feature, per_tensor; got 'per_row'"),
        ("calibration", "entropy", "quantize.q8int.calibration must be one of mse, minmax, endpoint; got 'entropy'"),
        ("weight_scale_search", "mse", "quantize.q8int.weight_scale_search must be true or false, got 'mse'"),
        ("bias_correction", 1, "quantize.q8int.bias_correction must be true or false, got 1"),
    ],
)
def test_integer_quantize_stage_exits_2_with_one_line(tmp_path, key, value, expected):
    path = write_params(tmp_path, with_value("quantize.q8int", key, value))
    with pytest.raises(PipelineError) as error:
        params.integer_quantize_params(path)
    assert str(error.value) == f"params.yaml: {expected}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = run([sys.executable, "-m", "stages.quantize_int"], cwd=tmp_path, check=False, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: params.yaml: {expected}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
