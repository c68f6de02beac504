"""README promises that tests can keep: its results table is scripts/results.py's output for the
committed metrics, its test command is the one CI runs, and every page it links exists."""

from __future__ import annotations

import re
import sys

from conftest import REPO

README = (REPO / "README.md").read_text()
sys.path.insert(0, str(REPO / "scripts"))
import results  # noqa: E402

from housing_predictor import paths  # noqa: E402
from housing_predictor.models import load_metrics  # noqa: E402


def test_results_table_is_generated_from_the_committed_metrics():
    table = results.results_table(load_metrics(REPO / paths.METRICS_DIR))
    assert results.with_table(README, table) == README, "README's results table is stale: python scripts/results.py --readme"


def test_readme_test_command_is_what_ci_runs():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^bash (scripts/\S+)\s", quick_start, re.M) == ["scripts/pipeline.sh", "scripts/test.sh"]
    assert "bash scripts/test.sh" in (REPO / ".ci/run").read_text()


def test_every_linked_page_and_picture_exists():
    links = re.findall(r"\]\(((?!https?:)[^)#]+)", README) + re.findall(r'src="([^"]+)"', README)
    assert links, "no links found"
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
