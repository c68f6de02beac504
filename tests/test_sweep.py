"""The sweep stage: every (scheme, bits) pair, the same figures as evaluate at 8 and 16 bits, the
published failures reproduced, and its params checked like every other section."""

from __future__ import annotations

import csv
import json

import pytest

from housing_predictor import paths
from housing_predictor.modelfile import load_model
from housing_predictor.quantization import dequantize_model
from stages import params
from stages import sweep as sweep_stage
from stages.dataset import read_split

from conftest import REPO, affine

FIGURES = ["r2_drop_ppm", "rms_deviation_usd", "max_deviation_usd", "payload_bytes"]


@pytest.fixture(scope="module")
def swept(built) -> tuple[dict, dict]:
    """metrics/sweep.json and every model's metrics/<model>.json, just computed by the stages."""
    read = lambda path: json.loads((built / path).read_text())  # noqa: E731
    return read(paths.SWEEP_METRICS), {name: read(paths.metrics_file(name)) for name in paths.MODELS}


def test_sweep_rebuilds_the_committed_files_byte_for_byte(built):
    for path in (paths.SWEEP_METRICS, paths.SWEEP_PLOT):
        assert (built / path).read_bytes() == (REPO / path).read_bytes(), path


def test_sweep_holds_every_scheme_and_bit_width(swept):
    figures, _ = swept
    section = params.load(REPO / "params.yaml").sweep
    assert list(figures) == list(section.schemes)
    widths = [str(bits) for bits in range(section.min_bits, section.max_bits + 1)]
    for name, by_bits in figures.items():
        assert list(by_bits) == widths, name
        for bits, entry in by_bits.items():
            assert list(entry) == FIGURES, (name, bits)
            assert entry["rms_deviation_usd"] <= entry["max_deviation_usd"], (name, bits)
            assert isinstance(entry["payload_bytes"], int)


def test_a_scheme_like_q8_or_q16_gives_exactly_evaluates_figures(swept):
    """The sweep quantizes by quantize-8/16's code path and scores like evaluate: where a sweep
    scheme and width are q8's or q16's, every figure is evaluate's, to the last bit."""
    figures, evaluation = swept
    section = params.load(REPO / "params.yaml").sweep
    compared = 0
    for model in paths.WEIGHT_ONLY_MODELS:
        scheme, bits = getattr(params.load(REPO / "params.yaml").quantize, model), str(paths.MODEL_BITS[model])
        for name, candidate in section.schemes.items():
            if candidate == scheme and bits in figures[name]:
                assert figures[name][bits] == {key: evaluation[model][key] for key in FIGURES}, (name, model)
                compared += 1
    if not compared:
        pytest.skip("no sweep scheme is quantize.q8's or quantize.q16's in params.yaml: nothing to compare")


def test_error_shrinks_with_bits_for_our_scheme(built):
    """What the sweep plot shows: affine's RMS deviation falls by orders of magnitude from 2 to 16
    bits, and at every width it beats both published schemes."""
    model = dequantize_model(load_model(built / paths.model_file("float")).tensors, "float")
    (train_X, _), (test_X, test_y) = (read_split(built / path) for path in (paths.TRAIN_CSV, paths.TEST_CSV))
    schemes = {"affine": affine(), "a": params.PublishedA(scheme="published_a"), "b": params.PublishedB(scheme="published_b")}
    figures = sweep_stage.sweep(model, train_X, test_X, test_y, schemes, range(2, 17))
    rms = {name: [entry["rms_deviation_usd"] for entry in by_bits.values()] for name, by_bits in figures.items()}
    assert rms["affine"][0] > 1_000 * rms["affine"][-1]
    for ours, a, b in zip(rms["affine"], rms["a"], rms["b"], strict=True):
        assert ours < a and ours < b


def test_plot_data_is_the_metrics(built, swept):
    figures, _ = swept
    with open(built / paths.SWEEP_PLOT, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == sweep_stage.PLOT_COLUMNS
    assert len(rows) == sum(len(by_bits) for by_bits in figures.values())
    for row in rows:
        entry = figures[row["scheme"]][row["bits"]]
        assert float(row["r2_drop_ppm"]) == entry["r2_drop_ppm"]
        assert float(row["abs_r2_drop"]) == abs(entry["r2_drop_ppm"]) / 1e6
        assert float(row["rms_deviation_usd"]) == entry["rms_deviation_usd"]
        assert int(row["payload_bytes"]) == entry["payload_bytes"]
