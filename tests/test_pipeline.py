"""The pipeline end to end with real DVC in fresh git repos: repro, the lock's truth, branches,
experiments, and a bad parameter."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from housing_predictor import paths

from conftest import REPO, run

pytestmark = pytest.mark.slow
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
DVC = [sys.executable, "-m", "dvc"]


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def set_param(repo: Path, dotted: str, value) -> None:
    """Edit one value of params.yaml in place (the text edit keeps the comments)."""
    path = repo / "params.yaml"
    document = yaml.safe_load(path.read_text())
    *parents, key = dotted.split(".")
    node = document
    for part in parents:
        node = node[part]
    node[key] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture
def work_repo(built_repo, tmp_path) -> Path:
    """A private copy of the built repo (git history, DVC cache and outputs) to change freely."""
    return Path(shutil.copytree(built_repo, tmp_path / "repo", symlinks=True))


def test_repro_on_a_fresh_clone_runs_all_stages_and_matches_the_committed_lock(built_repo):
    output = (built_repo.parent / "repro-output.txt").read_text()
    # sweep's outputs are all in git and its inputs come back bit for bit: DVC rightly skips it.
    assert stages_run(output) == [stage for stage in STAGES if stage != "sweep"]
    assert "Stage 'sweep' didn't change, skipping" in output
    # The committed dvc.lock, metrics/ and report are exactly what the code produces.
    assert run(["git", "status", "--porcelain"], cwd=built_repo).stdout == ""
    metrics = json.loads((built_repo / "metrics/evaluate.json").read_text())
    common = ["r2", "mse", "rmse", "mae", "mape", "max_error", "payload_bytes", "file_bytes"]
    assert list(metrics) == ["float", "q8", "q16", "q8int"]
    assert list(metrics["float"]) == common
    assert list(metrics["q8"]) == list(metrics["q16"]) == [*common, "r2_drop_ppm", "rms_deviation_usd", "max_deviation_usd"]
    assert list(metrics["q8int"]) == [*list(metrics["q8"]), "saturated_rows", "rms_deviation_unsaturated_usd"]
    for name in paths.MODELS:
        assert metrics[name]["file_bytes"] == (built_repo / paths.model_file(name)).stat().st_size
    train = json.loads((built_repo / "metrics/train.json").read_text())
    train_rows = len((built_repo / paths.TRAIN_CSV).read_text().splitlines()) - 1
    assert list(train) == ["train"] and train["train"]["rows"] == train_rows  # nested: never taken for a test score


def test_second_repro_is_a_no_op_and_the_dag_is_the_product(work_repo):
    result = run([*DVC, "repro"], cwd=work_repo)
    assert stages_run(result.stdout) == []
    assert "Data and pipelines are up to date." in result.stdout
    dot = run([*DVC, "dag", "--dot"], cwd=work_repo).stdout
    for upstream, downstream in [
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
    ]:
        assert f'"{upstream}" -> "{downstream}"' in dot


def test_plots_render_every_model(work_repo):
    rendered = json.loads(run([*DVC, "plots", "show", "--json"], cwd=work_repo).stdout)
    for plot in ("actual_vs_predicted", "residuals"):
        points = rendered["data"][plot][0]["content"]["data"]["values"]
        assert {point["filename"] for point in points} == {
            paths.plot_file(name).name for name in ("float", *paths.WEIGHT_ONLY_MODELS)
        }
        assert len(points) == 3 * (len((work_repo / paths.TEST_CSV).read_text().splitlines()) - 1)


def test_metrics_and_params_diff_across_branches(work_repo):
    """Branch off main, switch q8 to write-up B's scheme: only quantize-8, its export and evaluate re-run,
    and `dvc metrics diff main` shows the damage with nothing but git."""
    run(["git", "checkout", "-q", "-b", "published-b"], cwd=work_repo)
    set_param(work_repo, "quantize.q8", {"scheme": "published_b"})
    result = run([*DVC, "repro"], cwd=work_repo)
    assert stages_run(result.stdout) == ["quantize-8", "export-onnx", "evaluate"]
    run(["git", "commit", "-qam", "q8: published scheme B"], cwd=work_repo)

    metrics_diff = json.loads(run([*DVC, "metrics", "diff", "main", "--json"], cwd=work_repo).stdout)
    q8_r2 = metrics_diff["metrics/evaluate.json"]["q8.r2"]
    assert q8_r2["old"] == pytest.approx(0.576, abs=1e-3)
    assert q8_r2["new"] == pytest.approx(-46.732184, abs=1e-6)
    assert "float.r2" not in metrics_diff["metrics/evaluate.json"]  # unchanged metrics are not listed

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
    r2 = json.loads((work_repo / "metrics/evaluate.json").read_text())["float"]["r2"]
    assert r2 != pytest.approx(0.575788, abs=1e-4)  # another split, another score


def param_sections(node: dict, prefix: str = "") -> list[str]:
    """The sections of params.yaml that hold values (what one stage reads): load_data, quantize.q8..."""
    sections = []
    for key, value in node.items():
        if isinstance(value, dict):
            name = f"{prefix}{key}"
            nested = param_sections(value, f"{name}.")
            sections += nested if nested else [name]
    return sections


@pytest.mark.parametrize("section", param_sections(yaml.safe_load((REPO / "params.yaml").read_text())))
def test_misspelt_key_in_any_section_stops_dvc_repro(work_repo, section):
    """A typo is a change DVC sees (each stage tracks its whole section), so the stage runs and
    refuses it; restored, the pipeline is up to date and nothing was lost."""
    original = (work_repo / "params.yaml").read_text()
    built = {p: (work_repo / p).read_bytes() for p in ("data/train.csv", "models/q8.safetensors", "dvc.lock")}
    set_param(work_repo, f"{section}.misspelt_key", 1)
    result = run([*DVC, "repro"], cwd=work_repo, check=False)
    assert result.returncode != 0
    assert f"error: params.yaml: {section} has unknown key 'misspelt_key' (allowed keys: " in result.stderr + result.stdout
    assert {p: (work_repo / p).read_bytes() for p in built} == built
    (work_repo / "params.yaml").write_text(original)
    assert stages_run(run([*DVC, "repro"], cwd=work_repo).stdout) == []
    assert run(["git", "status", "--porcelain"], cwd=work_repo).stdout == ""


def test_plots_diff_in_a_fresh_clone_needs_only_git(work_repo, tmp_path):
    """Plot data is kept in git like metrics: a clone with an empty DVC cache and no remote still
    shows both revisions of every series in `dvc plots diff`."""
    run(["git", "checkout", "-q", "-b", "no-scale-search"], cwd=work_repo)
    set_param(work_repo, "quantize.q8.scale_search", "none")
    assert stages_run(run([*DVC, "repro"], cwd=work_repo).stdout) == ["quantize-8", "export-onnx", "evaluate"]
    run(["git", "add", "-A"], cwd=work_repo)
    run(["git", "commit", "-qm", "q8 without scale search"], cwd=work_repo)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(work_repo), str(clone)], cwd=tmp_path)
    assert not (clone / ".dvc" / "cache").exists()
    diff = json.loads(run([*DVC, "plots", "diff", "main", "--json"], cwd=clone).stdout)
    q8 = {}  # revision -> predictions of q8, from any plot drawing q8's file
    for renders in diff["data"].values():
        for point in renders[0]["content"]["data"]["values"]:
            if point.get("filename") == paths.plot_file("q8").name and "predicted" in point:
                q8.setdefault(point["rev"], []).append(float(point["predicted"]))
    assert set(q8) == {"workspace", "main"}
    assert len(q8["main"]) == len(q8["workspace"]) > 0
    assert q8["main"] != q8["workspace"]  # the one model that changed, both revisions present
