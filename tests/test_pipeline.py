"""The pipeline end to end with real DVC in fresh git repos: repro, the lock's truth, branches,
metrics, experiments and their table, the run-cache, and a bad parameter."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from housing_predictor import paths
from stages import evaluate

from conftest import REPO, run

pytestmark = pytest.mark.slow
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
DVC = [sys.executable, "-m", "dvc"]
KEPT_IN_GIT = ("dvc.lock", "metrics", "plots", "reports")


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def stages_restored(output: str) -> list[str]:
    """The stages `dvc repro` checked out from the run-cache instead of running them."""
    return [line.split("'")[1] for line in output.splitlines() if line.endswith("is cached - skipping run, checking out outputs")]


def set_param(repo: Path, dotted: str, value) -> None:
    """Set one value of params.yaml (the file is rewritten: comments go, as in a scratch copy)."""
    path = repo / "params.yaml"
    document = yaml.safe_load(path.read_text())
    *parents, key = dotted.split(".")
    node = document
    for part in parents:
        node = node[part]
    node[key] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def built_files(repo: Path) -> dict[str, str]:
    """sha256 of every file the pipeline built, cached or kept in git, and of dvc.lock."""
    files = {}
    for top in ("data", "models", "metrics", "plots", "reports", "dvc.lock"):
        for path in sorted([repo / top] if (repo / top).is_file() else (repo / top).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def clean(repo: Path) -> bool:
    return run(["git", "status", "--porcelain"], cwd=repo).stdout == ""


@pytest.fixture
def work_repo(built_repo, tmp_path) -> Path:
    """A private copy of the built repo (git history, DVC cache and outputs) to change freely."""
    return Path(shutil.copytree(built_repo, tmp_path / "repo", symlinks=True))


def test_repro_on_a_fresh_clone_runs_all_stages_and_matches_the_committed_lock(built_repo):
    output = (built_repo.parent / "repro-output.txt").read_text()
    # sweep's and report's outputs are all in git and their inputs come back bit for bit: DVC rightly skips them.
    assert stages_run(output) == [stage for stage in STAGES if stage not in ("sweep", "report")]
    assert "Stage 'sweep' didn't change, skipping" in output and "Stage 'report' didn't change, skipping" in output
    # The committed dvc.lock, metrics/, plot data and report are exactly what the code produces.
    assert clean(built_repo)
    metrics = json.loads((built_repo / paths.EVALUATE_METRICS).read_text())
    common = ["r2", "mse", "rmse", "mae", "mape", "max_error", "payload_bytes", "file_bytes"]
    assert list(metrics) == ["float", "q8", "q16", "q8int"]
    assert list(metrics["float"]) == common
    assert list(metrics["q8"]) == list(metrics["q16"]) == [*common, "r2_drop_ppm", "rms_deviation_usd", "max_deviation_usd"]
    assert list(metrics["q8int"]) == [*list(metrics["q8"]), "saturated_rows", "rms_deviation_unsaturated_usd"]
    for name in paths.MODELS:
        assert metrics[name]["file_bytes"] == (built_repo / paths.model_file(name)).stat().st_size
    assert json.loads((built_repo / paths.SUMMARY_METRICS).read_text()) == evaluate.summary(metrics)
    train = json.loads((built_repo / paths.TRAIN_METRICS).read_text())
    train_rows = len((built_repo / paths.TRAIN_CSV).read_text().splitlines()) - 1
    assert list(train) == ["train"] and train["train"]["rows"] == train_rows  # nested: never taken for a test score


def test_second_repro_is_a_no_op_and_the_dag_is_the_product(work_repo):
    result = run([*DVC, "repro"], cwd=work_repo)
    assert stages_run(result.stdout) == []
    assert "Data and pipelines are up to date." in result.stdout
    dot = run([*DVC, "dag", "--dot"], cwd=work_repo).stdout
    for upstream, downstream in [
        ("validate", "load-data"),
        ("validate", "quantize-8"),
        ("validate", "evaluate"),
        ("validate", "sweep"),
        ("load-data", "train"),
        ("train", "quantize-8"),
        ("train", "quantize-16"),
        ("quantize-8", "evaluate"),
        ("quantize-16", "evaluate"),
        ("train", "sweep"),
        ("train", "quantize-8int"),
        ("quantize-8int", "evaluate"),
        ("quantize-8", "export-onnx"),
        ("quantize-8int", "export-onnx"),
        ("evaluate", "report"),
        ("sweep", "report"),
    ]:
        assert f'"{upstream}" -> "{downstream}"' in dot


def test_metrics_show_fits_160_columns_with_the_details_a_target_away(built_repo):
    shown = run([*DVC, "metrics", "show"], cwd=built_repo).stdout
    width = max(map(len, shown.splitlines()))
    assert width <= 160, shown
    listed = json.loads(run([*DVC, "metrics", "show", "--json"], cwd=built_repo).stdout)[""]["data"]
    assert set(listed) == {str(paths.SUMMARY_METRICS), str(paths.TRAIN_METRICS)}
    targets = [str(paths.EVALUATE_METRICS), str(paths.SWEEP_METRICS)]
    details = json.loads(run([*DVC, "metrics", "show", "--json", *targets], cwd=built_repo).stdout)[""]["data"]
    for target in targets:
        assert details[target]["data"] == json.loads((built_repo / target).read_text())


def test_plots_render_every_model(work_repo):
    rendered = json.loads(run([*DVC, "plots", "show", "--json"], cwd=work_repo).stdout)
    for plot in ("actual_vs_predicted", "residuals"):
        points = rendered["data"][plot][0]["content"]["data"]["values"]
        assert {point["filename"] for point in points} == {
            paths.plot_file(name).name for name in ("float", *paths.WEIGHT_ONLY_MODELS)
        }
        assert len(points) == 3 * (len((work_repo / paths.TEST_CSV).read_text().splitlines()) - 1)


def test_metrics_and_params_diff_across_branches(work_repo):
    """Branch off main, switch q8 to write-up B's scheme: only validate, quantize-8, its export,
    evaluate and report re-run, and `dvc metrics diff main` shows the damage with nothing but git."""
    run(["git", "checkout", "-q", "-b", "published-b"], cwd=work_repo)
    set_param(work_repo, "quantize.q8", {"scheme": "published_b"})
    result = run([*DVC, "repro"], cwd=work_repo)
    assert stages_run(result.stdout) == ["validate", "quantize-8", "export-onnx", "evaluate", "report"]
    run(["git", "commit", "-qam", "q8: published scheme B"], cwd=work_repo)

    summary = json.loads(run([*DVC, "metrics", "diff", "main", "--json"], cwd=work_repo).stdout)
    assert list(summary) == [str(paths.SUMMARY_METRICS)]  # train.json: unchanged, not listed
    assert list(summary[str(paths.SUMMARY_METRICS)]) == ["q8.rms_deviation_usd"]
    details = json.loads(
        run([*DVC, "metrics", "diff", "main", "--json", "--targets", str(paths.EVALUATE_METRICS)], cwd=work_repo).stdout
    )
    q8_r2 = details[str(paths.EVALUATE_METRICS)]["q8.r2"]
    assert q8_r2["old"] == pytest.approx(0.576, abs=1e-3)
    assert q8_r2["new"] == pytest.approx(-46.732184, abs=1e-6)
    assert "float.r2" not in details[str(paths.EVALUATE_METRICS)]  # unchanged metrics are not listed

    params_diff = json.loads(run([*DVC, "params", "diff", "main", "--json"], cwd=work_repo).stdout)
    assert params_diff["params.yaml"]["quantize.q8.scheme"] == {"old": "affine", "new": "published_b"}
    assert {key.split(".")[1] for key in params_diff["params.yaml"]} == {"q8"}  # its affine-only keys went


def test_experiment_with_another_seed(work_repo):
    result = run([*DVC, "exp", "run", "-S", "load_data.random_state=7"], cwd=work_repo)
    assert stages_run(result.stdout) == STAGES
    shown = json.loads(run([*DVC, "exp", "show", "--json"], cwd=work_repo).stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    seeds = [
        revision["data"]["params"]["params.yaml"]["data"]["load_data"]["random_state"]
        for experiment in experiments
        for revision in experiment["revs"]
    ]
    assert 7 in seeds
    params_diff = json.loads(run([*DVC, "params", "diff", "--json"], cwd=work_repo).stdout)
    assert params_diff["params.yaml"]["load_data.random_state"] == {"old": 42, "new": 7, "diff": -35}
    r2 = json.loads((work_repo / paths.EVALUATE_METRICS).read_text())["float"]["r2"]
    assert r2 != pytest.approx(0.575788, abs=1e-4)  # another split, another score


def test_back_to_params_seen_before_every_computing_stage_comes_from_the_run_cache(work_repo):
    """docs/pipeline.md's reset between experiments, after a repro that ran the stages: nothing is
    recomputed; report, the one stage that records no run of its own, re-renders
    (tests/test_remote.py: after `dvc commit --force`, not even that)."""
    ran = run([*DVC, "exp", "run", "-S", "quantize.q8.scale_search=none"], cwd=work_repo).stdout
    assert stages_run(ran) == ["validate", "quantize-8", "export-onnx", "evaluate", "report"]
    run(["git", "checkout", "--", "params.yaml"], cwd=work_repo)
    back = run([*DVC, "repro"], cwd=work_repo).stdout
    assert stages_restored(back) == ["validate", "quantize-8", "export-onnx", "evaluate"], back
    assert stages_run(back) == ["report"], back
    assert clean(work_repo)


def param_sections(node: dict, prefix: str = "") -> list[str]:
    """The sections of params.yaml that hold values (what one stage reads): load_data, quantize.q8..."""
    sections = []
    for key, value in node.items():
        if isinstance(value, dict):
            name = f"{prefix}{key}"
            nested = param_sections(value, f"{name}.")
            sections += nested if nested else [name]
    return sections


@pytest.mark.parametrize("section", ["", *param_sections(yaml.safe_load((REPO / "params.yaml").read_text()))])
def test_misspelt_key_in_any_section_stops_dvc_repro_before_any_output_is_touched(work_repo, section):
    """Stage validate refuses the typo (a misspelt section too: '' is the file's top) before any
    stage that would lose its outputs runs; restored, the pipeline is up to date. The one file
    that goes is validate's own stamp (DVC removes a stage's outputs before it runs the stage):
    a constant line, restored from the run-cache by the next repro."""
    original = (work_repo / "params.yaml").read_text()
    built = built_files(work_repo)
    del built[str(paths.PARAMS_STAMP)]
    set_param(work_repo, f"{section}.misspelt_key" if section else "misspelt_key", 1)
    result = run([*DVC, "repro"], cwd=work_repo, check=False)
    assert result.returncode != 0
    assert stages_run(result.stdout) == ["validate"]
    message = f"{section}: unknown key 'misspelt_key' (allowed keys: " if section else "unknown section 'misspelt_key' ("
    assert f"error: params.yaml: {message}" in result.stderr + result.stdout
    assert built_files(work_repo) == built
    (work_repo / "params.yaml").write_text(original)
    assert stages_run(run([*DVC, "repro"], cwd=work_repo).stdout) == []
    assert clean(work_repo)


def test_exp_run_set_param_changes_only_the_line_it_sets(work_repo):
    """params.yaml is one key per line: `dvc exp run -S` (here queued, so nothing runs) rewrites
    the line it sets and nothing else, in every section."""
    for override in [
        "load_data.random_state=7",
        "train.standardize=false",
        "quantize.q8int.calibration=minmax",
        "evaluate.selfcheck_rows=16",
        "sweep.schemes.affine.rounding=truncate",
    ]:
        run([*DVC, "exp", "run", "--queue", "-S", override], cwd=work_repo)
        diff = run(["git", "diff", "-U0", "HEAD", "refs/exps/celery/stash", "--", "params.yaml"], cwd=work_repo).stdout
        changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        key, value = override.rsplit("=", 1)
        assert len(changed) == 2 and changed[1].lstrip("+").split("#")[0].strip() == f"{key.split('.')[-1]}: {value}", diff
    assert clean(work_repo)


def exp_show_recipe() -> list[list[str]]:
    """The `dvc exp show` commands docs/pipeline.md gives for a table in 120 columns."""
    docs = (REPO / "docs" / "pipeline.md").read_text()
    section = docs.split("**Experiments side by side in 120 columns.**", 1)[1]
    commands = re.findall(r"^(dvc exp show .+)$", section.split("```bash", 1)[1].split("```", 1)[0], re.M)
    assert len(commands) == 2
    return [shlex.split(command)[1:] for command in commands]


def test_exp_show_recipe_fits_120_columns(work_repo):
    """docs/pipeline.md's two tables, on three experiments: one changes a q8int figure, one q8's,
    one is queued; the docs' reset between the two run in the workspace."""
    run([*DVC, "exp", "run", "-n", "q8int-minmax", "-S", "quantize.q8int.calibration=minmax"], cwd=work_repo)
    run(["git", "checkout", "--", "params.yaml"], cwd=work_repo)
    run([*DVC, "repro"], cwd=work_repo)
    run([*DVC, "exp", "run", "-n", "q8-no-search", "-S", "quantize.q8.scale_search=none"], cwd=work_repo)
    run([*DVC, "exp", "run", "--queue", "-n", "seed-7", "-S", "load_data.random_state=7"], cwd=work_repo)
    env = {**os.environ, "COLUMNS": "120"}
    figures, changes = (run([*DVC, *command], cwd=work_repo, env=env).stdout for command in exp_show_recipe())
    for table in (figures, changes):
        assert max(map(len, table.splitlines())) <= 120, table
        assert "…" not in table, table  # no column cut short
        for name in ("q8int-minmax", "q8-no-search", "seed-7"):
            assert f"[{name}]" in table, table
    header = next(line for line in figures.splitlines() if "Experiment" in line).split()
    assert header == ["Experiment", "float.r2", "q8.rms_deviation_usd", "q16.rms_deviation_usd", "q8int.rms_deviation_usd"]
    header = next(line for line in changes.splitlines() if "Experiment" in line).split()
    assert header == ["Experiment", "load_data.random_state", "quantize.q8.scale_search", "quantize.q8int.calibration"]


def test_plots_diff_in_a_fresh_clone_needs_only_git(work_repo, tmp_path):
    """Plot data is kept in git like metrics: a clone with an empty DVC cache and no remote still
    shows both revisions of every series in `dvc plots diff`."""
    run(["git", "checkout", "-q", "-b", "no-scale-search"], cwd=work_repo)
    set_param(work_repo, "quantize.q8.scale_search", "none")
    ran = stages_run(run([*DVC, "repro"], cwd=work_repo).stdout)
    assert ran == ["validate", "quantize-8", "export-onnx", "evaluate", "report"]
    run(["git", "add", "-A"], cwd=work_repo)
    run(["git", "commit", "-qm", "q8 without scale search"], cwd=work_repo)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(work_repo), str(clone)], cwd=tmp_path)
    assert not (clone / ".dvc" / "cache").exists()
    diff = json.loads(run([*DVC, "plots", "diff", "main", "--json"], cwd=clone).stdout)
    q8 = {}  # revision -> predictions of q8, from any plot drawing q8's file
    for renders in diff["data"].values():
        for render in renders:
            for point in render["content"]["data"]["values"]:
                if point.get("filename") == paths.plot_file("q8").name and "predicted" in point:
                    q8.setdefault(point["rev"], []).append(float(point["predicted"]))
    assert set(q8) == {"workspace", "main"}
    assert len(q8["main"]) == len(q8["workspace"]) > 0
    assert q8["main"] != q8["workspace"]  # the one model that changed, both revisions present
