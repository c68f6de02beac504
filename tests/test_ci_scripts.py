"""The scripts CI shares with .ci/run: the reproducibility gate (scripts/check_reproduced.sh and its
tolerance check, scripts/compare_reproduced.py) and the pull-request report (scripts/pr_report.sh),
run in small git+DVC repos. (Moved unchanged from tests/test_workflows.py.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run

DVC = [sys.executable, "-m", "dvc"]


# --- the tolerance check (scripts/compare_reproduced.py) -------------------------------------------


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_reproduced", REPO / "scripts" / "compare_reproduced.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lock() -> dict:
    return yaml.safe_load((REPO / "dvc.lock").read_text())


def entry(lock: dict, stage: str, kind: str, path: str) -> dict:
    return next(e for e in lock["stages"][stage][kind] if e["path"] == path)


def params(lock: dict, stage: str) -> dict:
    return lock["stages"][stage]["params"]["params.yaml"]


def test_lock_identical_passes_with_nothing_to_report(compare, lock):
    result = compare.compare_lock(lock, yaml.safe_load((REPO / "dvc.lock").read_text()))
    assert result.problems == [] and result.drifts == []


def test_lock_may_differ_in_the_hashes_of_produced_files(compare, lock):
    new = yaml.safe_load((REPO / "dvc.lock").read_text())
    for stage in new["stages"].values():
        for item in stage.get("deps", []) + stage.get("outs", []):
            if item["path"] == "models/float.safetensors":
                item["md5"], item["size"] = "0" * 32, item["size"] + 1
    result = compare.compare_lock(lock, new)
    assert result.problems == []
    assert any("models/float.safetensors md5" in line for line in result.drifts)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda lock: entry(lock, "train", "deps", "stages/train.py").update(md5="0" * 32), "stages/train.py md5"),
        (lambda lock: entry(lock, "train", "deps", "stages/train.py").update(size=1), "stages/train.py size"),
        (lambda lock: params(lock, "train").update({"train.standardize": False}), "stage train: params"),
        (lambda lock: params(lock, "quantize-8")["quantize.q8"].update(rounding="truncate"), "stage quantize-8: params"),
        (lambda lock: lock["stages"]["train"].update(cmd="python -m stages.train --fast"), "stage train: cmd"),
        (lambda lock: lock["stages"].pop("quantize-16"), "stages"),
        (lambda lock: lock["stages"]["train"]["outs"].pop(), "stage train: outs: files"),
    ],
)
def test_lock_fails_on_a_change_of_code_params_or_shape(compare, lock, change, message):
    new = yaml.safe_load((REPO / "dvc.lock").read_text())
    change(new)
    result = compare.compare_lock(lock, new)
    assert any(message in line for line in result.problems), result.problems


def perturbed(document, path: tuple, value):
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value(node[path[-1]]) if callable(value) else value
    return copy


@pytest.fixture
def metrics() -> dict:
    return json.loads((REPO / "metrics" / "evaluate.json").read_text())


def test_metrics_within_a_few_ulps_pass(compare, metrics):
    metrics = perturbed(metrics, ("q16", "r2_drop_ppm"), 0.0)  # units in the keys leave no tiny figure: make one
    new = perturbed(metrics, ("q8", "r2"), lambda v: v * (1 + 1e-15))
    new = perturbed(new, ("q16", "r2_drop_ppm"), 3e-16)  # tiny value: abs tolerance
    result = compare.compare_json(metrics, new, "metrics/evaluate.json: ")
    assert result.problems == []
    assert [line.split(":")[1].strip() for line in result.drifts] == ["q8.r2", "q16.r2_drop_ppm"]


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("q8", "r2"), lambda v: v * (1 + 1e-6), "q8.r2"),
        (("q16", "r2_drop_ppm"), lambda v: v * (1 + 1e-6), "q16.r2_drop_ppm"),
        (("q8", "payload_bytes"), lambda v: v + 1, "q8.payload_bytes"),
        (("float", "r2"), "0.5757", "float.r2"),
        (("q8", "extra"), 1.0, "q8: keys"),
    ],
)
def test_metrics_beyond_tolerance_or_of_another_kind_fail(compare, metrics, path, value, message):
    result = compare.compare_json(metrics, perturbed(metrics, path, value), "metrics/evaluate.json: ")
    assert any(message in line for line in result.problems), result.problems


def test_metrics_key_order_must_match(compare, metrics):
    reordered = {name: dict(reversed(list(values.items()))) for name, values in metrics.items()}
    result = compare.compare_json(metrics, reordered, "m: ")
    assert len(result.problems) == len(metrics)  # one per model


def test_report_numbers_may_move_by_one_printed_digit_but_its_text_may_not_change(compare):
    old = "| q8 | 0.575995 | -0.00021 | 9.4e-06 | 1033 |\n"
    assert compare.compare_text(old, old.replace("0.575995", "0.575996"), "r").problems == []
    assert compare.compare_text(old, old.replace("9.4e-06", "9.5e-06"), "r").problems == []
    assert compare.compare_text(old, old.replace("0.575995", "0.575997"), "r").problems
    assert compare.compare_text(old, old.replace("1033", "1034"), "r").problems  # integers are exact
    assert compare.compare_text(old, old.replace("q8", "q16"), "r").problems
    assert compare.compare_text(old, old + "more\n", "r").problems


def test_a_file_missing_on_either_side_fails(compare):
    assert compare.compare_file("metrics/new.json", None, "{}").problems == ["metrics/new.json: new, not committed"]
    assert compare.compare_file("metrics/old.json", "{}", None).problems == ["metrics/old.json: committed, not rebuilt"]


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
    for name in ("check_reproduced.sh", "compare_reproduced.py", "pr_report.sh", "env.sh"):
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


def test_gate_passes_when_repro_gives_the_committed_bits(toy):
    repro(toy, "0")
    status, output = gate(toy)
    assert status == 0, output
    assert "reproduced exactly" in output


def test_gate_passes_with_a_warning_when_floats_differ_in_the_last_bits(toy, tmp_path):
    repro(toy, "1e-15")
    summary = tmp_path / "summary.md"
    status, output = gate(toy, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    assert status == 0, output
    assert '-  "score": 0.3333333333333333,' in output  # the git diff
    assert "| metrics/m.json | score" in output.replace("  ", " ").replace("  ", " ")  # dvc metrics diff
    assert "::warning title=Reproducibility gate::reproduced within tolerance" in output
    assert "within tolerance" in summary.read_text()


def test_gate_fails_and_prints_the_difference_when_metrics_change(toy, tmp_path):
    repro(toy, "1e-3")
    summary = tmp_path / "summary.md"
    status, output = gate(toy, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    assert status == 1, output
    assert '-  "score": 0.3333333333333333,' in output and '+  "score": 0.333666666666666' in output
    assert "-score 0.333333 on 3 rows" in output
    assert "NOT REPRODUCED:   metrics/m.json: score" in output
    assert "::error title=Reproducibility gate::not reproduced" in output
    assert "FAILED" in summary.read_text() and "metrics/m.json" in summary.read_text()


def test_gate_fails_when_the_workspace_is_not_what_dvc_lock_describes(toy):
    metrics = toy / "metrics" / "m.json"
    metrics.write_text(metrics.read_text().replace("0.333", "0.444"))  # edited by hand, no repro
    status, output = gate(toy)
    assert status == 1, output
    assert "modified:" in output and "metrics/m.json" in output
    assert '+  "score": 0.444' in output
    assert "run `dvc repro`" in output


def test_gate_fails_on_a_metrics_file_that_is_not_committed(toy):
    (toy / "metrics" / "extra.json").write_text("{}\n")
    status, output = gate(toy)
    assert status == 1, output
    assert "?? metrics/extra.json" in output and "metrics/extra.json: new, not committed" in output


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
