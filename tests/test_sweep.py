"""The sweep stage: every (scheme, bits) pair, the same figures as evaluate at 8 and 16 bits, the
published failures reproduced, and its params checked like every other section."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from housing_predictor import paths
from housing_predictor.errors import PipelineError
from stages import sweep as sweep_stage
from stages.params import QuantizeParams, sweep_params

from conftest import REPO, run

FIGURES = ["r2_drop_ppm", "rms_deviation_usd", "max_deviation_usd", "payload_bytes"]


def committed_params() -> dict:
    return YAML(typ="safe").load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="module")
def swept_repo(built_repo, tmp_path_factory) -> Path:
    """A copy of the built repo where the sweep stage has just run again (a fresh clone's `dvc
    repro` skips it: its outputs are in git and its inputs come back bit for bit)."""
    repo = Path(shutil.copytree(built_repo, tmp_path_factory.mktemp("swept") / "repo", symlinks=True))
    for path in (paths.SWEEP_METRICS, paths.SWEEP_PLOT):
        (repo / path).unlink()
    run([sys.executable, "-m", "stages.sweep"], cwd=repo)
    return repo


@pytest.fixture(scope="module")
def swept(swept_repo) -> tuple[dict, dict]:
    """metrics/sweep.json just computed, and metrics/evaluate.json of a fresh `dvc repro`."""
    read = lambda path: json.loads((swept_repo / path).read_text())  # noqa: E731
    return read(paths.SWEEP_METRICS), read(paths.EVALUATE_METRICS)


def test_sweep_rebuilds_the_committed_files_byte_for_byte(swept_repo):
    for path in (paths.SWEEP_METRICS, paths.SWEEP_PLOT):
        assert (swept_repo / path).read_bytes() == (REPO / path).read_bytes(), path


def test_sweep_holds_every_scheme_and_bit_width(swept):
    figures, _ = swept
    section = committed_params()["sweep"]
    assert list(figures) == list(section["schemes"])
    assert {"affine", "affine_no_search", "published_a", "published_b"} <= set(figures)
    widths = [str(bits) for bits in range(section["min_bits"], section["max_bits"] + 1)]
    assert widths == [str(bits) for bits in range(2, 17)]
    for name, by_bits in figures.items():
        assert list(by_bits) == widths, name
        for bits, entry in by_bits.items():
            assert list(entry) == FIGURES, (name, bits)
            assert entry["rms_deviation_usd"] <= entry["max_deviation_usd"], (name, bits)
            assert isinstance(entry["payload_bytes"], int)


def test_affine_at_8_and_16_bits_is_exactly_evaluates_q8_and_q16(swept):
    figures, evaluation = swept
    params = committed_params()
    sweep_affine = params["sweep"]["schemes"]["affine"]
    assert sweep_affine == params["quantize"]["q8"] == params["quantize"]["q16"]  # else the comparison means nothing
    for name, bits in paths.QUANTIZED_BITS.items():
        assert figures["affine"][str(bits)] == {key: evaluation[name][key] for key in FIGURES}, name


def test_published_b_at_8_bits_reproduces_the_write_ups_failure(swept):
    figures, evaluation = swept
    r2 = evaluation["float"]["r2"] - figures["published_b"]["8"]["r2_drop_ppm"] / 1e6
    assert r2 == pytest.approx(-46.732184, abs=1e-6)
    r2_a = evaluation["float"]["r2"] - figures["published_a"]["8"]["r2_drop_ppm"] / 1e6
    assert r2_a == pytest.approx(-0.193525, abs=1e-6)


def test_error_shrinks_with_bits_for_our_scheme(swept):
    """What the sweep plot shows: affine's RMS deviation falls by orders of magnitude from 2 to 16
    bits, and at every width it beats both published schemes."""
    figures, _ = swept
    rms = {name: [entry["rms_deviation_usd"] for entry in by_bits.values()] for name, by_bits in figures.items()}
    assert rms["affine"][0] > 1_000 * rms["affine"][-1]
    for ours, a, b in zip(rms["affine"], rms["published_a"], rms["published_b"], strict=True):
        assert ours < a and ours < b


def test_plot_data_is_the_metrics(swept_repo, swept):
    figures, _ = swept
    with open(swept_repo / paths.SWEEP_PLOT, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == sweep_stage.PLOT_COLUMNS
    assert len(rows) == sum(len(by_bits) for by_bits in figures.values())
    for row in rows:
        entry = figures[row["scheme"]][row["bits"]]
        assert float(row["r2_drop_ppm"]) == entry["r2_drop_ppm"]
        assert float(row["abs_r2_drop"]) == abs(entry["r2_drop_ppm"]) / 1e6
        assert float(row["rms_deviation_usd"]) == entry["rms_deviation_usd"]
        assert int(row["payload_bytes"]) == entry["payload_bytes"]


# --- params -------------------------------------------------------------------------------------


def params_file(tmp_path: Path, change) -> Path:
    document = committed_params()
    change(document["sweep"])
    path = tmp_path / "params.yaml"
    with open(path, "w") as handle:
        YAML(typ="safe").dump(document, handle)
    return path


def test_committed_sweep_params_load():
    params = sweep_params(REPO / "params.yaml")
    assert (params.min_bits, params.max_bits) == (2, 16)
    assert all(isinstance(scheme, QuantizeParams) for scheme in params.schemes.values())
    assert params.schemes["affine_no_search"].scale_search == "none"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.update(min_bits=1), "sweep.min_bits must be an integer from 2 to 16, got 1"),
        (lambda s: s.update(max_bits=17), "sweep.max_bits must be an integer from 2 to 16, got 17"),
        (lambda s: s.update(max_bits="16"), "sweep.max_bits must be an integer from 2 to 16, got '16'"),
        (lambda s: s.update(min_bits=True), "sweep.min_bits must be an integer from 2 to 16, got True"),
        (lambda s: s.update(min_bits=9, max_bits=8), "sweep.min_bits (9) must not exceed sweep.max_bits (8)"),
        (lambda s: s.update(schemes={}), "sweep.schemes must be a non-empty mapping"),
        (lambda s: s.update(schemes=["affine"]), "sweep.schemes must be a non-empty mapping"),
        (lambda s: s["schemes"].update({"Bad name": s["schemes"]["affine"]}), "sweep.schemes has a bad scheme name 'Bad name'"),
        (lambda s: s["schemes"]["affine"].update(scheme="float"), "sweep.schemes.affine.scheme must be one of affine,"),
        (lambda s: s["schemes"]["published_b"].pop("rounding"), "sweep.schemes.published_b.rounding is missing"),
        (lambda s: s["schemes"]["affine"].update(bits=8), "sweep.schemes.affine has unknown key 'bits'"),
        (lambda s: s.update(step=2), "sweep has unknown key 'step'"),
    ],
)
def test_bad_sweep_params_are_named(tmp_path, change, message):
    with pytest.raises(PipelineError, match="^params.yaml: ") as error:
        sweep_params(params_file(tmp_path, change))
    assert message in str(error.value)


def test_bad_param_stops_the_stage_and_keeps_its_outputs(built_repo, tmp_path):
    """A bad `sweep` section is one line and exit 2, and what the last run wrote is still there."""
    repo = Path(shutil.copytree(built_repo, tmp_path / "repo", symlinks=True))
    before = {path: (repo / path).read_bytes() for path in (paths.SWEEP_METRICS, paths.SWEEP_PLOT)}
    text = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(text.replace("  max_bits: 16", "  max_bits: 32"))
    result = run([sys.executable, "-m", "stages.sweep"], cwd=repo, check=False)
    assert result.returncode == 2
    assert result.stderr == "error: params.yaml: sweep.max_bits must be an integer from 2 to 16, got 32\n"
    assert {path: (repo / path).read_bytes() for path in before} == before
