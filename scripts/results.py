"""The pipeline's results, one row per model, from metrics/<model>.json: R², R² drop, deviations
from the float model, sizes. scripts/pipeline.sh ends with it; README.md's results table is its
output (`--readme` rewrites that table; tests/test_readme.py checks it is current).

`dvc metrics show` rounds every figure to 5 decimals, where the float model's R² and the 16-bit
model's (about 1e-6 apart) both show as 0.57579; this prints each figure at a precision that shows it.

    python scripts/results.py [--readme]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the project's packages, when run as a script

from housing_predictor import paths  # noqa: E402
from housing_predictor.errors import PipelineError  # noqa: E402
from housing_predictor.models import load_metrics  # noqa: E402

README = REPO / "README.md"
BEGIN, END = "<!-- results: python scripts/results.py --readme -->", "<!-- /results -->"
# (key in metrics/<model>.json, column heading, format); a model without a key shows "—".
COLUMNS = (
    ("r2", "R²", "{:.6f}"),
    ("r2_drop_ppm", "R² drop (ppm)", "{:,.2f}"),
    ("rms_deviation_usd", "RMS deviation ($)", "{:,.2f}"),
    ("max_deviation_usd", "max deviation ($)", "{:,.2f}"),
    ("payload_bytes", "payload bytes", "{:d}"),
    ("file_bytes", "file bytes", "{:d}"),
)


def results_table(metrics: dict) -> str:
    """A Markdown table of the models in ``metrics`` (model name -> figures), in that order."""
    lines = ["| model | " + " | ".join(heading for _, heading, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for model, figures in metrics.items():
        cells = (fmt.format(figures[key]) if key in figures else "—" for key, _, fmt in COLUMNS)
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def with_table(readme: str, table: str) -> str:
    """``readme`` with the text between its results markers replaced by ``table``."""
    before, found, rest = readme.partition(BEGIN)
    _, found_end, after = rest.partition(END)
    if not (found and found_end):
        sys.exit(f"error: {README} has no {BEGIN} ... {END} block for the results table")
    return f"{before}{BEGIN}\n{table}\n{END}{after}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's results table instead of printing it")
    args = parser.parse_args()
    try:
        table = results_table(load_metrics(REPO / paths.METRICS_DIR))
    except PipelineError as error:
        sys.exit(f"error: cannot read the results: {error}")
    if args.readme:
        README.write_text(with_table(README.read_text(), table))
    else:
        print(f"Results on the test split ({paths.metrics_file('<model>')}; R² drop and deviations are from the float model):\n")
        print(table)


if __name__ == "__main__":
    main()
