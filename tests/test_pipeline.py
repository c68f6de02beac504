"""The pipeline end to end with real DVC in fresh git repos: repro, the lock's truth, every model's
metrics across commits, experiments and their table, and a bad parameter. (The run-cache and a
fresh clone: tests/test_remote.py; plots diff in a clone: tests/test_plots.py.)"""

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

from conftest import REPO, run

pytestmark = pytest.mark.slow
STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
DVC = [sys.executable, "-m", "dvc"]


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


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
    assert run([*DVC, "status"], cwd=built_repo).stdout.strip() == "Data and pipelines are up to date."
    for name in paths.MODELS:
        file_bytes = json.loads((built_repo / paths.metrics_file(name)).read_text())["file_bytes"]
        assert file_bytes == (built_repo / paths.model_file(name)).stat().st_size, name
    train_rows = len((built_repo / paths.TRAIN_CSV).read_text().splitlines()) - 1
    assert json.loads((built_repo / paths.TRAIN_METRICS).read_text())["rows"] == train_rows


@pytest.fixture(scope="module")
def branched(built_repo, tmp_path_factory) -> Path:
    """A copy of the built repo with a second commit, on branch published-b: q8 switched to write-up
    B's scheme, `dvc repro` run and its results committed. `main` is the first commit."""
    repo = Path(shutil.copytree(built_repo, tmp_path_factory.mktemp("branched") / "repo", symlinks=True))
    run(["git", "checkout", "-q", "-b", "published-b"], cwd=repo)
    set_param(repo, "quantize.q8", {"scheme": "published_b"})
    run([*DVC, "repro"], cwd=repo)
    run(["git", "commit", "-qam", "q8: published scheme B"], cwd=repo)
    return repo


def committed_json(repo: Path, revision: str, path: Path) -> dict:
    return json.loads(run(["git", "show", f"{revision}:{path}"], cwd=repo).stdout)


def test_metrics_diff_between_two_commits_lists_every_models_figures(branched):
    """`dvc metrics diff` between the commits, with nothing but git: every figure of every model's
    file (`--all`; test_stages.py checks which figures a file holds), with each commit's value;
    without `--all`, exactly the q8 figures that moved. `dvc metrics show` fits 180 columns."""
    diff = json.loads(run([*DVC, "metrics", "diff", "main", "HEAD", "--all", "--json"], cwd=branched).stdout)
    assert set(diff) == {str(paths.TRAIN_METRICS), *(str(paths.metrics_file(name)) for name in paths.MODELS)}
    moved = set()
    for name in paths.MODELS:
        path = paths.metrics_file(name)
        old, new = committed_json(branched, "main", path), committed_json(branched, "HEAD", path)
        figures = diff[str(path)]
        assert set(figures) == set(old), name
        assert {key: (entry["old"], entry["new"]) for key, entry in figures.items()} == {key: (old[key], new[key]) for key in old}
        moved |= {(name, key) for key in figures if old[key] != new[key]}
    assert {"r2", "rms_deviation_usd"} <= {key for name, key in moved if name == "q8"}
    assert {name for name, _ in moved} == {"q8"}
    changed = json.loads(run([*DVC, "metrics", "diff", "main", "--json"], cwd=branched).stdout)
    assert changed == {str(paths.metrics_file("q8")): {key: diff[str(paths.metrics_file("q8"))][key] for _, key in moved}}

    shown = run([*DVC, "metrics", "show"], cwd=branched).stdout
    assert max(map(len, shown.splitlines())) <= 180, shown

    params_diff = json.loads(run([*DVC, "params", "diff", "main", "--json"], cwd=branched).stdout)
    assert params_diff["params.yaml"]["quantize.q8.scheme"] == {"old": "affine", "new": "published_b"}
    assert {key.split(".")[1] for key in params_diff["params.yaml"]} == {"q8"}  # its affine-only keys went


@pytest.mark.parametrize("section", ["", "quantize.q8"])
def test_a_misspelt_key_stops_dvc_repro_before_any_output_is_touched(work_repo, section):
    """Stage validate refuses the typo (a misspelt section: '' is the file's top; test_params.py:
    in every section) before any stage that would lose its outputs runs; restored, the pipeline is
    up to date. The one file that goes is validate's own stamp (DVC removes a stage's outputs
    before it runs the stage): a constant line, restored from the run-cache by the next repro."""
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


def last_key(node: dict, prefix: str) -> tuple[str, object]:
    """The dotted name and value of the last key of a params.yaml section, nested as deep as it goes."""
    key, value = list(node.items())[-1]
    return last_key(value, f"{prefix}{key}.") if isinstance(value, dict) else (f"{prefix}{key}", value)


def test_exp_run_set_param_changes_only_the_line_it_sets(work_repo):
    """params.yaml is one key per line: `dvc exp run -S` (here queued, so nothing runs) rewrites
    the line it sets and nothing else, in every section."""
    for section, node in yaml.safe_load((work_repo / "params.yaml").read_text()).items():
        key, value = last_key(node, f"{section}.")
        new = f"{value}x" if isinstance(value, str) else json.dumps(not value if isinstance(value, bool) else value + 1)
        run([*DVC, "exp", "run", "--queue", "-S", f"{key}={new}"], cwd=work_repo)
        diff = run(["git", "diff", "-U0", "HEAD", "refs/exps/celery/stash", "--", "params.yaml"], cwd=work_repo).stdout
        changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        assert len(changed) == 2 and changed[1].lstrip("+").split("#")[0].strip() == f"{key.split('.')[-1]}: {new}", diff
    assert clean(work_repo)


def exp_show_recipe() -> tuple[list[list[str]], list[list[str]]]:
    """The `dvc exp show` commands docs/pipeline.md gives for tables in 120 columns, and the column
    headings of the tables it shows them print."""
    docs = (REPO / "docs" / "pipeline.md").read_text()
    section = docs.split("**Experiments side by side in 120 columns.**", 1)[1]
    commands, shown = section.split("```bash", 1)[1].split("```", 1)
    commands = [shlex.split(command)[1:] for command in re.findall(r"^(dvc exp show .+)$", commands, re.M)]
    headings = [line.split() for line in shown.split("```", 2)[1].splitlines() if line.strip().startswith("Experiment")]
    assert commands and len(headings) == len(commands)
    return commands, headings


def test_exp_show_recipe_fits_120_columns(work_repo):
    """docs/pipeline.md's tables, on three experiments: one changes a q8int figure, one q8's, one
    is queued; the docs' reset between the two run in the workspace. Each table has the columns the
    page shows, in full."""
    run([*DVC, "exp", "run", "-n", "q8int-minmax", "-S", "quantize.q8int.calibration=minmax"], cwd=work_repo)
    run(["git", "checkout", "--", "params.yaml"], cwd=work_repo)
    run([*DVC, "repro"], cwd=work_repo)
    run([*DVC, "exp", "run", "-n", "q8-no-search", "-S", "quantize.q8.scale_search=none"], cwd=work_repo)
    run([*DVC, "exp", "run", "--queue", "-n", "seed-7", "-S", "load_data.random_state=7"], cwd=work_repo)
    env = {**os.environ, "COLUMNS": "120"}
    for command, heading in zip(*exp_show_recipe(), strict=True):
        table = run([*DVC, *command], cwd=work_repo, env=env).stdout
        assert max(map(len, table.splitlines())) <= 120, table
        assert "…" not in table, table  # no column cut short
        for name in ("q8int-minmax", "q8-no-search", "seed-7"):
            assert f"[{name}]" in table, table
        assert next(line for line in table.splitlines() if "Experiment" in line).split() == heading, table
