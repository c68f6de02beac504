"""The plots a person reads: DVC renders every one of them with data for each model, in `dvc plots
show` and `dvc plots diff`, and scripts/render_plots.py draws each as SVG without a browser."""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from housing_predictor import paths

from conftest import REPO, run

DVC = [sys.executable, "-m", "dvc"]
RENDER = "scripts/render_plots.py"
PLOTS = ["deviation_from_float", "weight_error", "sweep_r2_drop", "sweep_rms_deviation", "actual_vs_predicted", "residuals"]
TEST_ROWS = len((REPO / "plots" / "float.csv").read_text().splitlines()) - 1  # the committed test split
SVG = "{http://www.w3.org/2000/svg}"


def points_by_source(spec: dict) -> dict[str, int]:
    """How many data points DVC put in a spec for each file (or sweep scheme)."""
    counts: dict[str, int] = {}
    for point in spec["data"]["values"]:
        source = point["scheme"] if "scheme" in point else Path(point["filename"]).name
        counts[source] = counts.get(source, 0) + 1
    return counts


@pytest.fixture(scope="module")
def shown(built_repo) -> dict[str, dict]:
    """plot name -> the Vega-Lite spec `dvc plots show --json` fills, in a reproduced repo."""
    rendered = json.loads(run([*DVC, "plots", "show", "--json"], cwd=built_repo).stdout)
    assert "errors" not in rendered, rendered.get("errors")
    return {name: entries[0]["content"] for name, entries in rendered["data"].items()}


def test_every_plot_is_shown_with_data_for_each_model(shown):
    assert list(shown) == PLOTS
    assert points_by_source(shown["deviation_from_float"]) == {"q8.csv": TEST_ROWS, "q16.csv": TEST_ROWS}
    assert points_by_source(shown["weight_error"]) == {"weights_q8.csv": 8, "weights_q16.csv": 8}
    for name in ("actual_vs_predicted", "residuals"):
        assert points_by_source(shown[name]) == {"float.csv": TEST_ROWS, "q8.csv": TEST_ROWS, "q16.csv": TEST_ROWS}
    sweep = yaml.safe_load((REPO / "params.yaml").read_text())["sweep"]
    for name in ("sweep_r2_drop", "sweep_rms_deviation"):
        assert points_by_source(shown[name]) == dict.fromkeys(sweep["schemes"], sweep["max_bits"] - sweep["min_bits"] + 1)


def test_plots_draw_deviations_log_axes_and_y_equals_x(shown):
    """Deviations are quantized - float; the sweep has log axes and marks 8 and 16 bits; actual vs
    predicted has a y = x line: from the templates in .dvc/plots, filled by DVC."""
    for point in shown["deviation_from_float"]["data"]["values"][:50]:
        assert float(point["deviation_usd"]) == pytest.approx(
            (float(point["predicted"]) - float(point["float_predicted"])) * 100_000, abs=1e-6
        )
    for point in shown["weight_error"]["data"]["values"]:
        assert float(point["error"]) == pytest.approx(float(point["dequantized"]) - float(point["float"]), abs=1e-12)
    for name in ("sweep_r2_drop", "sweep_rms_deviation"):
        data_layer, rules, labels = shown[name]["layer"]
        assert data_layer["encoding"]["y"]["scale"]["type"] == "log"
        assert data_layer["encoding"]["color"]["field"] == "scheme"
        assert [mark["bits"] for mark in rules["data"]["values"]] == [paths.MODEL_BITS[name] for name in paths.WEIGHT_ONLY_MODELS]
        assert labels["encoding"]["text"]["field"] == "label"
    diagonal = shown["actual_vs_predicted"]["layer"][1]
    assert diagonal["encoding"]["x"]["field"] == diagonal["encoding"]["y"]["field"]
    assert diagonal["encoding"]["x2"]["field"] == diagonal["encoding"]["y2"]["field"]


def svg_marks(path: Path) -> int:
    """Parse an SVG file; the number of drawn paths, lines and rects in it."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return sum(len(root.findall(f".//{SVG}{tag}")) for tag in ("path", "line", "rect"))


def test_render_script_writes_an_svg_for_every_plot(built_repo, tmp_path):
    result = run([sys.executable, RENDER, "--out", str(tmp_path)], cwd=built_repo)
    assert [Path(line).name for line in result.stdout.splitlines()] == [f"{name}.svg" for name in PLOTS]
    for name in PLOTS:
        path = tmp_path / f"{name}.svg"
        assert path.stat().st_size > 5_000, name
        assert svg_marks(path) > 20, name
    assert svg_marks(tmp_path / "deviation_from_float.svg") > 2 * TEST_ROWS  # every point drawn
    assert "q16" in (tmp_path / "sweep_r2_drop.svg").read_text()  # the marked widths are labelled


def test_render_script_draws_plots_diff(built_repo, tmp_path):
    """After a q8 change, `--diff HEAD` draws both revisions of each plot."""
    repo = Path(shutil.copytree(built_repo, tmp_path / "repo", symlinks=True))
    text = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(text.replace("    scale_search: mse", "    scale_search: none", 1))
    run([*DVC, "repro"], cwd=repo)
    diff = json.loads(run([*DVC, "plots", "diff", "HEAD", "--json"], cwd=repo).stdout)["data"]
    for name in ("deviation_from_float", "weight_error"):
        revs = {point["rev"] for point in diff[name][0]["content"]["data"]["values"]}
        assert revs == {"HEAD", "workspace"}, name
    out = tmp_path / "svg"
    run([sys.executable, RENDER, "--diff", "HEAD", "--out", str(out), "--only", "weight_error", "sweep_r2_drop"], cwd=repo)
    assert sorted(path.name for path in out.iterdir()) == ["sweep_r2_drop.svg", "weight_error.svg"]
    assert all(svg_marks(path) > 20 for path in out.iterdir())


def test_render_script_names_a_bad_plot(built_repo, tmp_path):
    result = run([sys.executable, RENDER, "--out", str(tmp_path), "--only", "nosuch"], cwd=built_repo, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no plot named nosuch in dvc.yaml (plots: deviation_from_float, ")
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_readme_shows_the_rendered_plots_from_git():
    """README's images are the render script's README set, committed under docs/plots/."""
    readme = (REPO / "README.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\((docs/plots/[^)]+\.svg)\)", readme)
    script = (REPO / RENDER).read_text()
    readme_plots = re.search(r"README_PLOTS = \(([^)]*)\)", script).group(1)
    assert shown == [f"docs/plots/{name}.svg" for name in re.findall(r'"([a-z0-9_]+)"', readme_plots)]
    tracked = run(["git", "ls-files", "docs/plots"], cwd=REPO).stdout.split()
    assert sorted(shown) == sorted(tracked)
    for path in shown:
        assert svg_marks(REPO / path) > 20, path


def test_weights_plot_data_is_the_weights_table(built_repo):
    table = json.loads((built_repo / paths.WEIGHTS_TABLE).read_text())
    for name in paths.WEIGHT_ONLY_MODELS:
        with open(built_repo / paths.weights_plot_file(name), newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [row["feature"] for row in rows] == [weight["feature"] for weight in table[name]["weights"]]
        assert [float(row["error"]) for row in rows] == [weight["error"] for weight in table[name]["weights"]]
