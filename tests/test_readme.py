"""README promises that tests can keep: its results table matches the committed metrics, and its
test command is the one CI runs."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()
COLUMNS = ["r2", "r2_drop_ppm", "rms_deviation_usd", "max_deviation_usd", "payload_bytes", "file_bytes"]
ROWS = {"float64": "float", "8-bit": "q8", "16-bit": "q16", "integer-only 8-bit": "q8int"}


def results_table() -> dict[str, list[str]]:
    section = README.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for prefix, name in ROWS.items():
            if cells[0].startswith(prefix):
                rows[name] = cells[1:]
    return rows


def shown_value(text: str) -> tuple[float, float]:
    """A table cell as a number and half a unit of its last digit (what rounding allows)."""
    text = text.replace("−", "-").replace(",", "")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(text), 0.5 * 10.0**-decimals


def test_results_table_matches_metrics():
    metrics = json.loads((REPO / "metrics/evaluate.json").read_text())
    table = results_table()
    assert set(table) == {"float", "q8", "q16", "q8int"}
    for name, cells in table.items():
        for key, cell in zip(COLUMNS, cells, strict=True):
            if cell == "—":
                assert key not in metrics[name]
                continue
            value, tolerance = shown_value(cell)
            assert metrics[name][key] == pytest.approx(value, abs=tolerance), f"README {name} {key}"


def test_readme_test_command_is_what_ci_runs():
    commands = re.findall(r"^bash (scripts/\S+)\s", README.split("## Quick start", 1)[1].split("\n## ", 1)[0], re.M)
    assert commands == ["scripts/pipeline.sh", "scripts/test.sh"]
    ci = (REPO / ".ci/run").read_text()
    assert "bash scripts/test.sh" in ci
