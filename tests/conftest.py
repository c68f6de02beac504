"""Shared fixtures: the repository, and one real `dvc repro` in a fresh git repo.

The tests need nothing set: California Housing comes from scikit-learn's defaults, as in the stages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Run `python` and `dvc` from the interpreter running the tests (the project's venv).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


FIGURES = pytest.StashKey[list]()


def pytest_configure(config) -> None:
    config.stash[FIGURES] = []


def pytest_terminal_summary(terminalreporter, config) -> None:
    if config.stash.get(FIGURES, []):
        terminalreporter.section("figures")
        for line in config.stash[FIGURES]:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def figure(pytestconfig):
    """``figure(line)``: a measured figure (a size, a duration), printed in the summary of the run,
    never asserted: machines differ."""
    return pytestconfig.stash[FIGURES].append


def run(args: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, capturing text output; on an unexpected failure show what it printed."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def git_tracked_copy(destination: Path) -> Path:
    """Copy the files git tracks (as they are in the work tree) into a new git repo with one commit."""
    files = run(["git", "ls-files", "-z"], cwd=REPO).stdout.split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    run(["git", "init", "-q", "-b", "main"], cwd=destination)
    run(["git", "config", "user.email", "tests@housing-mlops"], cwd=destination)
    run(["git", "config", "user.name", "tests"], cwd=destination)
    run(["git", "add", "-A"], cwd=destination)
    run(["git", "commit", "-qm", "fresh clone"], cwd=destination)
    return destination


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory) -> Path:
    """A fresh git repo of the project after one full `dvc repro` (all artifacts built).

    Shared by the tests that need real artifacts; they must not modify it. The data comes as a
    user's would: scikit-learn's own data folder (SCIKIT_LEARN_DATA if set), downloaded if missing.
    """
    repo = git_tracked_copy(tmp_path_factory.mktemp("built") / "repo")
    result = run([sys.executable, "-m", "dvc", "repro"], cwd=repo)
    (repo.parent / "repro-output.txt").write_text(result.stdout)  # outside the repo: git status stays clean
    return repo
