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

from stages.params import Affine, LoadData

REPO = Path(__file__).resolve().parents[1]
# The split the published write-ups of this pipeline use, to which their figures belong
# (tests/test_quantization_real.py checks them).
PUBLISHED_SPLIT = LoadData(test_size=0.2, random_state=42)
# What the two public write-ups of this pipeline report on PUBLISHED_SPLIT, as they state it (R² to
# six places; scheme B's codes of the 8 coefficients): their claims, which our implementations of
# their schemes (quantization.py's published_a and published_b) must reproduce to 1e-6, kept here
# once. Not figures our code produced: a test comparing our output with our own past output would
# only detect change. docs/quantization.md quotes them.
PUBLISHED_FIGURES = {
    "float_r2": 0.575788,  # plain LinearRegression, the test split
    "published_a": {8: {"r2": -0.193525, "r2_all_rows": -0.095502}},  # all_rows: the 20,640 rows, as write-up A scored it
    "published_b": {
        8: {"r2": -46.732184, "codes": [184, 92, 65, 254, 90, 90, 2, 0]},
        16: {"r2": 0.575183, "codes": [47521, 23881, 16716, 65534, 23357, 23167, 749, 0]},
    },
}


def affine(**changes) -> Affine:
    """Our scheme with the options the project recommends (params.yaml's quantize.q8), changed by ``changes``."""
    options = {"symmetric": True, "signed": True, "rounding": "nearest", "scale_search": "mse", "bias_correction": True}
    return Affine(scheme="affine", **{**options, **changes})


def housing_split(split: LoadData = PUBLISHED_SPLIT):
    """California Housing from scikit-learn's folder (downloading if missing), split as ``split``
    says: X_train, X_test, y_train, y_test."""
    from sklearn.datasets import fetch_california_housing
    from sklearn.model_selection import train_test_split

    X, y = fetch_california_housing(return_X_y=True)
    return train_test_split(X, y, test_size=split.test_size, random_state=split.random_state)


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


# Every stage's command as dvc.yaml runs it, in one Python process (imports paid once): what the
# fast tier's ``built`` fixture runs instead of `dvc repro`.
RUN_STAGES = """
import runpy, shlex, sys, yaml
for stage in yaml.safe_load(open(sys.argv[1]))["stages"].values():
    module, *args = shlex.split(stage["cmd"])[2:]  # python -m MODULE ARGS
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """A folder holding what every stage writes for the committed params.yaml: each stage's
    command from dvc.yaml, in order, without DVC (the slow tier's ``built_repo`` runs `dvc repro`).
    Shared by the tests that need real artifacts; they must not modify it."""
    folder = tmp_path_factory.mktemp("built")
    shutil.copy(REPO / "params.yaml", folder)
    run([sys.executable, "-c", RUN_STAGES, str(REPO / "dvc.yaml")], cwd=folder, env={**os.environ, "PYTHONPATH": str(REPO)})
    return folder


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
