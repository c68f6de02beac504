"""The scripts CI shares with .ci/run, run in small git+DVC repos: the reproducibility gate
(scripts/check_reproduced.sh: exact, `dvc status` and git) and the pull-request report
(scripts/pr_report.sh)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import REPO, run

pytestmark = pytest.mark.slow  # real DVC in small repos

DVC = [sys.executable, "-m", "dvc"]


# --- the gate and the report in a small git+DVC repo -----------------------------------------------

MAKE = """import json, os, pathlib, yaml
value = yaml.safe_load(open("params.yaml"))["make"]["value"] * (1 + float(os.environ.get("PERTURB", "0")))
for folder in ("metrics", "reports", "data"):
    pathlib.Path(folder).mkdir(exist_ok=True)
pathlib.Path("metrics/m.json").write_text(json.dumps({"score": value / 3, "rows": 3}, indent=2) + "\\n")
pathlib.Path("reports/r.md").write_text(f"# Report\\n\\nscore {value / 3:.6f} on 3 rows\\n")
pathlib.Path("data/out.txt").write_text(repr(value / 3) + "\\n")
"""
TOY_DVC_YAML = """stages:
  make:
    cmd: python make.py
    deps: [make.py]
    params: [make.value]
    outs:
      - data/out.txt
      - metrics/m.json:
          cache: false
      - reports/r.md:
          cache: false
metrics:
  - metrics/m.json
"""


@pytest.fixture(scope="module")
def toy_repo(tmp_path_factory) -> Path:
    """A git repo with the gate's and the report's scripts and a one-stage DVC pipeline whose
    result a PERTURB environment variable can move (as another CPU's kernels would): two commits,
    `base` without the pipeline, then `main` with it built and committed."""
    repo = tmp_path_factory.mktemp("toy") / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("check_reproduced.sh", "pr_report.sh", "env.sh"):
        shutil.copy2(REPO / "scripts" / name, repo / "scripts" / name)
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    run(["git", "config", "user.email", "tests@housing-mlops"], cwd=repo)
    run(["git", "config", "user.name", "tests"], cwd=repo)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "scripts only"], cwd=repo)
    run(["git", "branch", "base"], cwd=repo)
    (repo / "make.py").write_text(MAKE)
    (repo / "dvc.yaml").write_text(TOY_DVC_YAML)
    (repo / "params.yaml").write_text("make:\n  value: 1.0\n")
    run([*DVC, "init", "-q"], cwd=repo)
    run([*DVC, "config", "core.analytics", "false"], cwd=repo)
    run([*DVC, "repro", "-q"], cwd=repo)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "pipeline"], cwd=repo)
    return repo


@pytest.fixture
def toy(toy_repo, tmp_path) -> Path:
    return Path(shutil.copytree(toy_repo, tmp_path / "repo", symlinks=True))


def gate(repo: Path, **env) -> tuple[int, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")} | env
    result = run(["bash", "scripts/check_reproduced.sh"], cwd=repo, check=False, env=environment)
    return result.returncode, result.stdout + result.stderr


def repro(repo: Path, perturb: str) -> None:
    run([*DVC, "repro", "-q", "-f"], cwd=repo, env=os.environ | {"PERTURB": perturb})


@pytest.mark.parametrize(
    ("perturb", "status", "annotation", "summary"),
    [
        ("0", 0, "::notice title=Reproducibility gate::`dvc repro` rebuilt dvc.lock metrics plots reports bit for bit", "exact"),
        # Exact, with no tolerance: a rebuild that differs in the last bits (on another CPU's
        # kernels, say) is another result, and the committed numbers must be the ones the code gives.
        ("1e-15", 1, "::error title=Reproducibility gate::`dvc repro` does not give what", "FAILED"),
    ],
    ids=["same bits", "last bits differ"],
)
def test_gate_passes_only_when_repro_gives_the_committed_bits(toy, tmp_path, perturb, status, annotation, summary):
    repro(toy, perturb)
    returned, output = gate(toy, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    assert returned == status and annotation in output, output
    assert f"Reproducibility gate: {summary}" in (tmp_path / "summary.md").read_text()
    if status:  # the difference, as git and `dvc metrics diff` show it
        assert '-  "score": 0.3333333333333333,' in output
        assert "| metrics/m.json | score" in re.sub(" +", " ", output)


def test_gate_fails_when_the_workspace_is_not_what_dvc_lock_describes(toy):
    metrics = toy / "metrics" / "m.json"
    metrics.write_text(metrics.read_text().replace("0.333", "0.444"))  # edited by hand, no repro
    status, output = gate(toy)
    assert status == 1 and "modified:" in output and "metrics/m.json" in output and "run `dvc repro`" in output, output


def test_gate_fails_on_a_metrics_file_that_is_not_committed(toy):
    (toy / "metrics" / "extra.json").write_text("{}\n")
    status, output = gate(toy)
    assert status == 1 and "?? metrics/extra.json" in output, output


def test_pr_report_shows_the_params_and_metrics_a_change_commits(toy):
    (toy / "params.yaml").write_text("make:\n  value: 2.0\n")
    repro(toy, "0")
    run(["git", "commit", "-qam", "value 2"], cwd=toy)
    result = run(["bash", "scripts/pr_report.sh", "HEAD~1", "main"], cwd=toy)
    lines = [re.sub(r"\s+", " ", line) for line in result.stdout.splitlines()]
    assert lines[0] == "## Params and metrics: main → this change"
    assert "| Path | Param | main | this change |" in lines
    assert "| params.yaml | make.value | 1.0 | 2.0 |" in lines
    assert "| Path | Metric | main | this change | Change |" in lines
    assert "| metrics/m.json | score | 0.3333333333333333 | 0.6666666666666666 | 0.3333333333333333 |" in lines
    assert not any("rows" in line for line in lines if line.startswith("|")), "unchanged metrics are left out"


def test_pr_report_shows_a_last_bits_change_as_such_not_as_zero(toy):
    repro(toy, "1e-15")
    run(["git", "commit", "-qam", "another CPU"], cwd=toy)
    result = run(["bash", "scripts/pr_report.sh", "HEAD~1"], cwd=toy)
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("| metrics/m.json")]
    change = float(row.split("|")[-2])
    assert 0 < change < 1e-15


def test_pr_report_says_when_nothing_changed(toy):
    result = run(["bash", "scripts/pr_report.sh", "HEAD"], cwd=toy)
    assert "No param changed." in result.stdout and "No metric changed." in result.stdout


def test_pr_report_against_a_base_without_the_pipeline_lists_everything_as_new(toy):
    result = run(["bash", "scripts/pr_report.sh", "base"], cwd=toy)
    rows = [re.sub(r"\s+", " ", line) for line in result.stdout.splitlines()]
    assert "| params.yaml | make.value | - | 1.0 |" in rows
    assert "| metrics/m.json | score | - | 0.3333333333333333 | - |" in rows


def test_pr_report_refuses_a_base_it_does_not_have(toy):
    result = run(["bash", "scripts/pr_report.sh", "origin/nowhere"], cwd=toy, check=False)
    assert result.returncode == 2
    assert "not a commit in this clone" in result.stderr and result.stdout == ""
