"""Print the pipeline's results, one row per model, from metrics/evaluate.json (what `dvc repro`
just wrote): R², R² drop, deviations from the float model, sizes. scripts/pipeline.sh ends with it.

`dvc metrics show` prints every key of every file in one wide row, at 5 decimals, where a 16-bit
model's R² drop (about 1e-6) shows as -0.0; this prints each figure at a precision that shows it.

    python scripts/results.py [metrics/evaluate.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# (key in metrics/evaluate.json, column heading, format); a model without a key shows "—".
COLUMNS = (
    ("r2", "R²", "{:.6f}"),
    ("r2_drop_ppm", "R² drop (ppm)", "{:,.2f}"),
    ("rms_deviation_usd", "RMS deviation ($)", "{:,.2f}"),
    ("max_deviation_usd", "max deviation ($)", "{:,.2f}"),
    ("payload_bytes", "payload bytes", "{:d}"),
    ("file_bytes", "file bytes", "{:d}"),
)


def results_table(metrics: dict) -> str:
    """A Markdown table of the models in ``metrics`` (model name -> figures), in file order."""
    lines = ["| model | " + " | ".join(heading for _, heading, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for model, figures in metrics.items():
        if isinstance(figures, dict):
            cells = (fmt.format(figures[key]) if key in figures else "—" for key, _, fmt in COLUMNS)
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "metrics/evaluate.json")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        sys.exit(f"error: cannot read the results in {path}: {error}")
    print(f"Results on the test split ({path}; R² drop and deviations are from the float model):\n")
    print(results_table(metrics))


if __name__ == "__main__":
    main()
