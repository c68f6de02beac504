"""The plots a person reads: DVC renders every one of them with data for each model, in `dvc plots
show` and in `dvc plots diff` (in a clone, with git only); the templates tell models and revisions
apart; scripts/render_plots.py draws each as SVG without a browser, and the committed ones without
a meaningless legend."""

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
DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGE_PLOTS = [next(iter(entry)) for stage in DVC_YAML["stages"].values() for entry in stage.get("plots", [])]
DETAILS = [path for path in STAGE_PLOTS if path.endswith(".json")]  # plots for the run-cache, no list: nothing drawn
# What `dvc plots show` draws, in its order: dvc.yaml's top-level plots, then the stage plots.
PLOTS = [next(iter(plot)) for plot in DVC_YAML["plots"]] + [path for path in STAGE_PLOTS if path not in DETAILS]
SVGS = [Path(name).stem for name in PLOTS]  # render_plots.py names a stage plot's SVG by its file
TEST_ROWS = len((REPO / "plots" / "float.csv").read_text().splitlines()) - 1  # the committed test split
SVG = "{http://www.w3.org/2000/svg}"


def points_by_source(spec: dict) -> dict[str, int]:
    """How many data points DVC put in a spec for each file (or sweep scheme)."""
    counts: dict[str, int] = {}
    for point in spec["data"]["values"]:
        source = point["scheme"] if "scheme" in point else Path(point["filename"]).name
        counts[source] = counts.get(source, 0) + 1
    return counts


def specs(rendered: dict) -> dict[str, dict]:
    """plot name -> the Vega-Lite spec DVC filled, from `dvc plots show/diff --json`; the detail
    files, which DVC lists with nothing drawn, left out (after checking that they are so)."""
    assert "errors" not in rendered, rendered.get("errors")
    assert [name for name, entries in rendered["data"].items() if not entries] == DETAILS
    return {name: entries[0]["content"] for name, entries in rendered["data"].items() if entries}


@pytest.fixture(scope="module")
def shown(built_repo) -> dict[str, dict]:
    """plot name -> the Vega-Lite spec `dvc plots show --json` fills, in a reproduced repo."""
    return specs(json.loads(run([*DVC, "plots", "show", "--json"], cwd=built_repo).stdout))


@pytest.fixture(scope="module")
def diffed(built_repo, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """A git clone (no DVC cache, no remote) of the built repo with a second commit, where q8 lost
    its scale search, and the specs of `dvc plots diff main` in it: every plot with two revisions."""
    root = tmp_path_factory.mktemp("diffed")
    repo = Path(shutil.copytree(built_repo, root / "repo", symlinks=True))
    run(["git", "checkout", "-q", "-b", "change"], cwd=repo)
    text = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(text.replace("    scale_search: mse", "    scale_search: none", 1))
    run([*DVC, "repro"], cwd=repo)
    run(["git", "commit", "-qam", "q8 without its scale search"], cwd=repo)
    run(["git", "clone", "-q", str(repo), str(root / "clone")], cwd=root)
    assert not (root / "clone" / ".dvc" / "cache").exists()
    return root / "clone", specs(json.loads(run([*DVC, "plots", "diff", "main", "--json"], cwd=root / "clone").stdout))


@pytest.mark.slow
def test_every_plot_is_shown_with_data_for_each_model(shown):
    assert list(shown) == PLOTS
    assert points_by_source(shown["deviation_from_float"]) == {"q8.csv": TEST_ROWS, "q16.csv": TEST_ROWS}
    assert points_by_source(shown["weight_error"]) == {"weights_q8.csv": 8, "weights_q16.csv": 8}
    for name in ("actual_vs_predicted", "residuals"):
        assert points_by_source(shown[name]) == {"float.csv": TEST_ROWS, "q8.csv": TEST_ROWS, "q16.csv": TEST_ROWS}
    sweep = yaml.safe_load((REPO / "params.yaml").read_text())["sweep"]
    for name in ("plots/sweep.csv", "sweep_rms_deviation"):
        assert points_by_source(shown[name]) == dict.fromkeys(sweep["schemes"], sweep["max_bits"] - sweep["min_bits"] + 1)


@pytest.mark.slow
def test_plots_draw_deviations_log_axes_and_y_equals_x(shown):
    """Deviations are quantized - float; the sweep has log axes and marks 8 and 16 bits; actual vs
    predicted has a y = x line: from the templates in .dvc/plots, filled by DVC."""
    for point in shown["deviation_from_float"]["data"]["values"][:50]:
        assert float(point["deviation_usd"]) == pytest.approx(
            (float(point["predicted"]) - float(point["float_predicted"])) * 100_000, abs=1e-6
        )
    for point in shown["weight_error"]["data"]["values"]:
        assert float(point["error"]) == pytest.approx(float(point["dequantized"]) - float(point["float"]), abs=1e-12)
    for name in ("plots/sweep.csv", "sweep_rms_deviation"):
        data_layer, rules, labels = shown[name]["layer"]
        assert data_layer["encoding"]["y"]["scale"]["type"] == "log"
        assert data_layer["encoding"]["color"]["field"] == "scheme"
        assert [mark["bits"] for mark in rules["data"]["values"]] == [paths.MODEL_BITS[name] for name in paths.WEIGHT_ONLY_MODELS]
        assert labels["encoding"]["text"]["field"] == "label"
    assert shown["plots/sweep.csv"]["layer"][0]["encoding"]["y"]["field"] == "y"  # from abs_r2_drop, the stage plot's y
    assert {point["abs_r2_drop"] for point in shown["plots/sweep.csv"]["data"]["values"]}
    diagonal = shown["actual_vs_predicted"]["layer"][1]
    assert diagonal["encoding"]["x"]["field"] == diagonal["encoding"]["y"]["field"]
    assert diagonal["encoding"]["x2"]["field"] == diagonal["encoding"]["y2"]["field"]


@pytest.mark.slow
def test_residuals_put_each_model_and_each_revision_in_its_own_panel_with_units(shown, diffed):
    """The three models' residuals are one blob on one axis, and in a diff one revision would hide
    the other: a column per model, a row per revision; the axes say $100k."""
    _, diff = diffed
    for spec, revisions in ((shown["residuals"], {"workspace"}), (diff["residuals"], {"main", "workspace"})):
        assert spec["facet"]["column"]["field"] == "model" and spec["facet"]["row"]["field"] == "rev"
        models = {Path(point["filename"]).stem for point in spec["data"]["values"]}
        assert models == {"float", *paths.WEIGHT_ONLY_MODELS}
        assert {point["rev"] for point in spec["data"]["values"]} == revisions
        encoding = spec["spec"]["layer"][0]["encoding"]
        assert "($100k)" in encoding["x"]["title"] and "($100k)" in encoding["y"]["title"]


def revision_legends(spec: dict) -> list[dict]:
    """The legends of the revision in ``spec`` compiled to Vega (what vl-convert and a browser draw)."""
    import vl_convert

    def legends(node: dict) -> list[dict]:
        return node.get("legends", []) + [legend for mark in node.get("marks", []) for legend in legends(mark)]

    return [legend for legend in legends(vl_convert.vegalite_to_vega(spec)) if legend.get("title") == "revision"]


@pytest.mark.slow
def test_in_a_diff_every_revision_legend_draws_its_mark(diffed):
    """A legend of line styles must stroke its samples (Vega-Lite paints them transparent when the
    line carries points); a legend of shapes or shades must fill them."""
    _, diff = diffed
    for name in PLOTS:
        if name == "residuals":  # the revision is a row of panels, labelled
            continue
        (legend,) = revision_legends(diff[name])
        symbols = ((legend.get("encode") or {}).get("symbols") or {}).get("update", {})
        stroke = symbols.get("stroke", {}).get("value", legend.get("symbolStrokeColor"))
        fill = symbols.get("fill", {}).get("value")
        if "strokeDash" in legend:
            assert stroke not in (None, "transparent"), (name, legend)
        else:
            assert fill not in (None, "transparent") or stroke not in (None, "transparent"), (name, legend)


def svg_marks(path: Path) -> int:
    """Parse an SVG file; the number of drawn paths, lines and rects in it."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return sum(len(root.findall(f".//{SVG}{tag}")) for tag in ("path", "line", "rect"))


@pytest.mark.slow
def test_render_script_writes_an_svg_for_every_plot(built_repo, tmp_path):
    result = run([sys.executable, RENDER, "--out", str(tmp_path)], cwd=built_repo)
    assert [Path(line).name for line in result.stdout.splitlines()] == [f"{name}.svg" for name in SVGS]
    for name in SVGS:
        path = tmp_path / f"{name}.svg"
        assert path.stat().st_size > 5_000, name
        assert svg_marks(path) > 20, name
    assert svg_marks(tmp_path / "deviation_from_float.svg") > 2 * TEST_ROWS  # every point drawn
    assert "q16" in (tmp_path / "sweep.svg").read_text()  # the marked widths are labelled


@pytest.mark.slow
def test_render_script_draws_plots_diff(diffed, tmp_path):
    """After a q8 change, `--diff main` draws both revisions of each plot, each from its own data,
    and says which is which."""
    repo, diff = diffed
    for name in ("deviation_from_float", "weight_error"):
        points = diff[name]["data"]["values"]
        main, workspace = ([{**point, "rev": None} for point in points if point["rev"] == rev] for rev in ("main", "workspace"))
        assert {point["rev"] for point in points} == {"main", "workspace"} and main != workspace, name
    out = tmp_path / "svg"
    run([sys.executable, RENDER, "--diff", "main", "--out", str(out), "--only", "weight_error", "plots/sweep.csv"], cwd=repo)
    assert sorted(path.name for path in out.iterdir()) == ["sweep.svg", "weight_error.svg"]
    for path in out.iterdir():
        assert svg_marks(path) > 20, path.name
        assert ">revision<" in path.read_text() and ">main<" in path.read_text(), path.name


@pytest.mark.slow
def test_render_script_names_a_bad_plot(built_repo, tmp_path):
    result = run([sys.executable, RENDER, "--out", str(tmp_path), "--only", "nosuch"], cwd=built_repo, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no plot named nosuch in dvc.yaml (plots: deviation_from_float, ")
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_pipeline_page_shows_the_rendered_plots_from_git():
    """docs/pipeline.md's images are the render script's --readme set, committed under docs/plots/,
    with no legend saying "revision: workspace" (they show one revision: it would tell nothing)."""
    page = (REPO / "docs" / "pipeline.md").read_text()
    shown = [f"docs/{path}" for path in re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.svg)\)", page)]
    script = (REPO / RENDER).read_text()
    readme_plots = re.search(r"README_PLOTS = \(([^)]*)\)", script).group(1)
    assert shown == [f"docs/plots/{Path(name).stem}.svg" for name in re.findall(r'"([a-z0-9_./]+)"', readme_plots)]
    tracked = run(["git", "ls-files", "docs/plots"], cwd=REPO).stdout.split()
    assert sorted(shown) == sorted(tracked)
    for path in shown:
        assert svg_marks(REPO / path) > 20, path
        assert ">revision<" not in (REPO / path).read_text() and ">workspace<" not in (REPO / path).read_text(), path


@pytest.mark.slow
def test_weights_plot_data_is_the_weights_table(built_repo):
    table = json.loads((built_repo / paths.WEIGHTS_TABLE).read_text())
    for name in paths.WEIGHT_ONLY_MODELS:
        with open(built_repo / paths.weights_plot_file(name), newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [row["feature"] for row in rows] == [weight["feature"] for weight in table[name]["weights"]]
        assert [float(row["error"]) for row in rows] == [weight["error"] for weight in table[name]["weights"]]
