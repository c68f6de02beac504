"""Render the pipeline's plots to SVG files, without a browser or node.

    python scripts/render_plots.py                      # every plot of the workspace -> build/plots/
    python scripts/render_plots.py --readme             # the plots docs/pipeline.md shows -> docs/plots/
    python scripts/render_plots.py --diff main --out build/plots-diff   # `dvc plots diff main`
    python scripts/render_plots.py --only plots/sweep.csv weight_error

Takes the Vega-Lite specs DVC itself fills (`dvc plots show --json`, or `dvc plots diff --json`:
dvc.yaml's top-level `plots:` and the plot data declared under a stage's `plots:`, with the
templates in .dvc/plots/ and the plot data in plots/) and converts each with vl-convert (Vega and
Vega-Lite compiled into a Python extension; no network: external URLs are refused). One file per
plot, replaced atomically: <name>.svg for a top-level plot, <file stem>.svg for a stage's plot
(plots/sweep.csv -> sweep.svg). The detail files declared as plots so that DVC keeps their stage's
run-cache (metrics/saturation.json, metrics/sweep.json) hold no list: DVC draws nothing for them,
and neither does this script. `--readme` leaves out the revision legends (one revision, "workspace",
tells a reader nothing). Run from anywhere in the repository, after `dvc repro` (the plot data is in
git, so a fresh clone renders too). Any failure is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the project's packages, when run as a script

from housing_predictor.errors import PipelineError, run_guarded  # noqa: E402
from housing_predictor.files import write_atomic  # noqa: E402

DEFAULT_OUT = REPO / "build" / "plots"
README_OUT = REPO / "docs" / "plots"
# What docs/pipeline.md shows, from files in git (tests/test_plots.py checks it links exactly these).
README_PLOTS = ("plots/sweep.csv", "sweep_rms_deviation", "deviation_from_float", "weight_error")


def dvc_plot_specs(diff_revs: list[str] | None) -> dict[str, dict]:
    """plot name -> the Vega-Lite spec DVC filled for it (data inlined)."""
    command = [sys.executable, "-m", "dvc", "plots", *(["diff", *diff_revs] if diff_revs else ["show"]), "--json"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"`{' '.join(command[2:])}` failed (exit {result.returncode}): {detail}")
    try:
        document = json.loads(result.stdout)
        rendered = document["data"]
    except (ValueError, KeyError, TypeError):
        raise PipelineError(f"`{' '.join(command[2:])}` printed no plots JSON: {result.stdout[:200]!r}") from None
    errors = document.get("errors")
    if errors:
        raise PipelineError(f"DVC could not read some plot data: {json.dumps(errors)[:300]}")
    specs = {}
    for name, entries in rendered.items():
        if not entries:  # a detail file under a stage's plots: (no list in it): nothing to draw
            continue
        vega = [entry["content"] for entry in entries if entry.get("type") == "vega"]
        if not vega:
            raise PipelineError(f"plot {name}: DVC gave no Vega-Lite spec (is its data an image?)")
        specs[name] = vega[0]
    return specs


def file_name(plot: str) -> str:
    """The SVG's name: a top-level plot's name, or a stage plot's data file stem (plots/sweep.csv: sweep)."""
    return Path(plot).stem if "/" in plot else plot


def without_revision_legends(node):
    """``node`` (a spec or part of one) with no legend for an encoding of the revision (``rev``)."""
    if isinstance(node, list):
        return [without_revision_legends(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: without_revision_legends(value) for key, value in node.items()}
    for channel in (copy.get("encoding") or {}).values():
        if isinstance(channel, dict) and channel.get("field") == "rev":
            channel["legend"] = None
    return copy


# A coordinate inside an SVG tag, beyond its first decimal: a tenth of a pixel is finer than any
# screen shows, and the 17-digit floats vl-convert writes make a 4,000-point scatter 1.5 MB.
EXCESS_DIGITS = re.compile(r"(\d\.\d)\d+")
TAG = re.compile(r"<[^>]+>")


def svg(spec: dict) -> str:
    """The SVG of a Vega-Lite spec, drawn by vl-convert, never fetching anything. ARIA labels off
    (one per point would double the file; the SVG is a picture, the interactive plot is DVC's) and
    coordinates to a tenth of a pixel, inside tags only: text such as axis labels is left as drawn."""
    import vl_convert

    drawn = vl_convert.vegalite_to_svg(spec, config={"aria": False}, allowed_base_urls=[])
    return TAG.sub(lambda tag: EXCESS_DIGITS.sub(r"\1", tag.group()), drawn)


def render(specs: dict[str, dict], out: Path, only: list[str] | None, legends: bool = True) -> list[Path]:
    names = list(specs) if not only else only
    unknown = [name for name in names if name not in specs]
    if unknown:
        raise PipelineError(f"no plot named {', '.join(unknown)} in dvc.yaml (plots: {', '.join(specs)})")
    files = [file_name(name) for name in names]
    if len(set(files)) < len(files):
        raise PipelineError(f"plots {', '.join(names)} would overwrite each other's SVG ({', '.join(files)})")
    written = []
    for name, file in zip(names, files, strict=True):
        spec = specs[name] if legends else without_revision_legends(specs[name])
        try:
            text = svg(spec)
        except ValueError as error:  # vl-convert's error for a spec it cannot compile or draw
            raise PipelineError(f"plot {name} cannot be drawn: {str(error).splitlines()[0]}") from None
        path = out / f"{file}.svg"
        write_atomic(path, text.encode())
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help=f"folder for the SVG files (default: {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--only", nargs="+", metavar="PLOT", help="render only these plots (names from dvc.yaml)")
    parser.add_argument("--diff", nargs="+", metavar="REV", help="render `dvc plots diff REV...` instead of the workspace")
    parser.add_argument(
        "--readme", action="store_true", help=f"the plots docs/pipeline.md shows, into {README_OUT.relative_to(REPO)}"
    )
    args = parser.parse_args()
    if args.readme and (args.only or args.diff):
        parser.error("--readme renders a fixed set of workspace plots: drop --only and --diff")
    out = args.out or (README_OUT if args.readme else DEFAULT_OUT)
    only = list(README_PLOTS) if args.readme else args.only
    for path in render(dvc_plot_specs(args.diff), out.resolve(), only, legends=not args.readme):
        print(path)


if __name__ == "__main__":
    run_guarded(main)
