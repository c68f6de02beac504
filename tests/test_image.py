"""The predictor image on a real Docker engine: what it is, what it does, serve under
deploy/base/deployment.yaml's constraints, and the push (scripts/push_image.sh) pulled back by digest.

The image: TEST_IMAGE (the workflow's and .ci/run's build of this checkout), else one built here by
scripts/build_image.sh from `built_repo` (on $PYTHON_IMAGE if set). The push needs REGISTRY. No
engine or no image: the first test says why (the build's last lines), failing with CI=true, else
skipping; the others skip. Containers run with `--network none`, the server on 127.0.0.1 (host).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from housing_predictor import linear
from housing_predictor.paths import MODELS

from conftest import REPO, run

pytestmark = pytest.mark.slow

SAMPLE = REPO / "tests" / "data" / "predict_sample.csv"  # what the workflow's users send: a few rows
DEPLOYMENT = REPO / "deploy" / "base" / "deployment.yaml"
RUNTIME_LAYER_LIMIT_BYTES = 60 * 2**20
TRAINING_MODULES = ("sklearn", "scipy", "joblib", "pandas", "yaml", "dvc")  # the pipeline's, never the image's
IN_CI = os.environ.get("CI") == "true"


def unavailable(what: str) -> None:
    """Skip on a developer's machine; fail in CI, where the image must be checked."""
    if IN_CI:
        pytest.fail(f"{what}, and CI=true: CI must check the image")
    pytest.skip(what)


def docker(*args: str, check: bool = True, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return run(["docker", *args], cwd=REPO, check=check, timeout=timeout, **kwargs)


def inspect(reference: str, template: str = "{{json .}}") -> str:
    return docker("image", "inspect", "--format", template, reference).stdout.strip()


def head(checkout: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], cwd=checkout).stdout.strip()


def project_version(checkout: Path) -> str:
    return tomllib.loads((checkout / "pyproject.toml").read_text())["project"]["version"]


def event_environment(ref: str | None, image_name: str, commit: str) -> dict[str, str]:
    """This process' environment as a runner's for ``ref`` (scripts/image_metadata.py's inputs)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_") and k not in ("IMAGE", "DEFAULT_BRANCH")}
    environment |= {"PYTHON": sys.executable, "IMAGE": image_name, "DEFAULT_BRANCH": "main", "GITHUB_SHA": commit}
    return environment | ({"GITHUB_REF": ref} if ref else {})


def build(tag: str, checkout: Path, environment: dict[str, str]) -> subprocess.CompletedProcess:
    script = str(REPO / "scripts" / "build_image.sh")
    return run(["bash", script, tag, str(checkout)], cwd=REPO, check=False, env=environment, timeout=900)


@dataclass(frozen=True)
class Image:
    ref: str  # what `docker run` is given
    id: str
    checkout: Path  # what it was built from: the reference models and predictor
    commit: str
    version: str


@pytest.fixture(scope="session")
def found_image(request, figure) -> Image | str:
    """The image to check, or why there is none: never an error, which pytest would repeat for each test."""
    try:
        result = run(["docker", "version", "--format", "{{.Server.Version}}"], cwd=REPO, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no Docker engine: {error}"
    if result.returncode != 0 or not result.stdout.strip():
        why = (result.stderr.strip().splitlines() or ["no server version"])[-1]
        return f"no Docker engine answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): {why}"
    given = os.environ.get("TEST_IMAGE")
    if given:
        result = docker("image", "inspect", "--format", "{{.Id}}", given, check=False)
        if result.returncode != 0:
            return f"TEST_IMAGE={given} is not an image of this engine: {result.stderr.strip()}"
        needed = [*(f"models/{m}.safetensors" for m in MODELS), "data/test.csv"]
        if missing := [name for name in needed if not (REPO / name).is_file()]:
            return f"TEST_IMAGE is checked against this checkout's artifacts, and {missing} are missing: run `dvc repro`"
        checkout, ref, image_id = REPO, given, result.stdout.strip()
    else:
        try:
            checkout = request.getfixturevalue("built_repo")
        except AssertionError as error:
            return f"`dvc repro` failed, so there is no image to build:\n{str(error)[-2000:]}"
        ref = f"housing-mlops:pytest-{uuid.uuid4().hex[:8]}"
        built = build(ref, checkout, event_environment(None, "housing-mlops", head(checkout)))
        if built.returncode != 0:
            return f"the image did not build:\n{built.stderr.strip()}"
        figure(built.stdout.strip())
        request.addfinalizer(lambda: docker("image", "rm", "--no-prune", ref, check=False))  # its layers: the next build's cache
        image_id = inspect(ref, "{{.Id}}")
    return Image(ref, image_id, checkout, head(checkout), project_version(checkout))


REPORTED: list[str] = []


@pytest.fixture
def image(found_image) -> Image:
    """The session's image; without one, the first test that needs it fails (in CI) or skips with
    the reason, and every other skips, pointing there: one cause, reported once."""
    if isinstance(found_image, Image):
        return found_image
    if REPORTED:
        pytest.skip(f"no image (reported once, by {REPORTED[0]})")
    REPORTED.append(os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0])
    unavailable(found_image)


def run_image(image: Image, *args: str, stdin: str | None = None, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``docker run --rm -i --network none [options] IMAGE [args]``: the entrypoint, or the default CMD."""
    return docker("run", "--rm", "-i", "--network", "none", *options, image.ref, *args, check=False, input=stdin)


def run_python(image: Image, *args: str) -> str:
    """The image's python (its interpreter, its working directory and user) run with ``args``."""
    return docker("run", "--rm", "--network", "none", "--entrypoint", "python", image.ref, *args).stdout


def checkout_predict(image: Image, model: str, text: str) -> str:
    """What the checkout's own predictor writes for ``text`` (its code, its models)."""
    return run([sys.executable, "-m", "housing_predictor", "predict", "--model", model], cwd=image.checkout, input=text).stdout


def assert_one_line_error(result: subprocess.CompletedProcess, message: str, status: int = 2) -> None:
    assert result.returncode == status, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert result.stdout == ""


# --- what the image is ------------------------------------------------------------------------------


def test_the_image_is_configured_as_promised(image):
    """What no run below shows: its own user, its port, its labels (the entrypoint, default command
    and HEALTHCHECK are run under the Deployment's constraints)."""
    config = json.loads(inspect(image.ref))["Config"]
    uid, gid = config["User"].split(":")  # numeric: verifiable by runAsNonRoot
    assert uid.isdigit() and gid.isdigit() and "0" not in (uid, gid), config["User"]
    environment = dict(entry.split("=", 1) for entry in config["Env"])
    assert (environment["SERVE_HOST"], environment["SERVE_PORT"]) == ("0.0.0.0", "8080")  # what `-p 8080:8080` needs
    assert set(config["ExposedPorts"]) == {"8080/tcp"}
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == image.commit
    assert labels["org.opencontainers.image.version"] == image.version  # the release, whatever the ref
    assert labels["org.opencontainers.image.source"]


EVENTS = {  # GITHUB_REF of each event the workflow runs on -> the tags after the image's name
    "push to main": ("refs/heads/main", lambda sha, version: {f"sha-{sha}", "main", "latest"}),
    "pull request": ("refs/pull/7/merge", lambda sha, version: {f"sha-{sha}", "pr-7"}),
    "release tag": (None, lambda sha, version: {f"sha-{sha}", version, ".".join(version.split(".")[:2])}),
}


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_builds_the_releases_labels_and_the_refs_tags(image, event):
    """scripts/build_image.sh as the workflow and .ci/run run it, for each event's GITHUB_REF: the
    version label is pyproject.toml's on every one (a branch or a pull request does not rename it)."""
    ref, tags = EVENTS[event]
    ref = ref or f"refs/tags/v{image.version}"
    name = f"housing-mlops-event-{uuid.uuid4().hex[:8]}"
    built = build(f"{name}:built", image.checkout, event_environment(ref, name, image.commit))
    ours = json.loads(inspect(f"{name}:built", "{{json .RepoTags}}")) if built.returncode == 0 else []
    try:
        assert built.returncode == 0, built.stderr
        labels = json.loads(inspect(f"{name}:built", "{{json .Config.Labels}}"))
        assert labels["org.opencontainers.image.version"] == image.version
        assert labels["org.opencontainers.image.revision"] == image.commit
        ours = [tag for tag in ours if tag.startswith(f"{name}:")]  # the same image may have others
        assert set(ours) == {f"{name}:{tag}" for tag in {"built", *tags(image.commit, image.version)}}
    finally:
        for tag in ours:
            docker("image", "rm", "--no-prune", tag, check=False)


def test_a_release_tag_that_is_not_the_projects_version_stops_before_the_build():
    version, name = project_version(REPO), "housing-mlops-never-built"
    other = f"v{version}.1"
    result = build(f"{name}:x", REPO, event_environment(f"refs/tags/{other}", name, "0" * 40))
    assert_one_line_error(result, f"release tag {other} is not pyproject.toml's version {version}")


def test_its_size_and_its_runtime_layers_size(image, figure):
    """Printed: the image, and the layer of the runtime requirements (pip install, then pruned)."""
    size = int(inspect(image.ref, "{{.Size}}"))
    history = docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", image.ref).stdout
    layers = [line.split("\t", 1) for line in history.splitlines()]
    [runtime] = [int(layer_size) for layer_size, created_by in layers if "pip install" in created_by]
    figure(f"image {image.ref}: {size / 2**20:.1f} MiB; runtime layer (pip install + prune): {runtime / 2**20:.1f} MiB")
    assert runtime <= RUNTIME_LAYER_LIMIT_BYTES, f"the runtime layer takes {runtime / 2**20:.1f} MiB"


def test_it_holds_the_predictor_its_artifacts_and_only_the_runtime_and_predict_loads_no_server(image):
    """Its files, then what selfcheck and predict import, both run in one interpreter of the image."""
    probe = (
        "import contextlib, importlib.util, io, json, os, runpy, sys, housing_predictor\n"
        "print(sys.version_info[:2] == (3, 11), housing_predictor.__file__)\n"
        f"print(sorted(m for m in {TRAINING_MODULES!r} if importlib.util.find_spec(m)))\n"
        "print(json.dumps([sorted(os.listdir(folder)) for folder in ('.', 'models', 'metrics')]))\n"
        "for argv in (['selfcheck'], ['predict', '--model', 'q8', '--input', 'models/selfcheck.csv', '--output', '/dev/null']):\n"
        "    sys.argv = ['housing_predictor', *argv]\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        runpy.run_module('housing_predictor', run_name='__main__')\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    version_and_package, installed, contents, modules = run_python(image, "-c", probe).splitlines()
    assert version_and_package == "True /app/housing_predictor/__init__.py"
    assert installed == "[]"  # scikit-learn, scipy, joblib... are not even installed
    # what the Dockerfile copies through the .dockerignore allowlist: no pickle, no data, no tests
    models = sorted([*(f"{m}.safetensors" for m in MODELS), "selfcheck.csv"])
    folders, model_files, metrics_files = json.loads(contents)
    assert (folders, model_files) == (["housing_predictor", "metrics", "models"], models)
    assert metrics_files and all((image.checkout / "metrics" / name).is_file() for name in metrics_files)  # the checkout's
    loaded = {name.split(".")[0] for name in modules.split()}
    assert {"numpy", "safetensors", "housing_predictor"} <= loaded
    assert not loaded & {*TRAINING_MODULES, "stages", "uvicorn", "starlette"}


# --- what it does -------------------------------------------------------------------------------------


def test_version_names_the_commit_and_every_model(image):
    result = run_image(image, "--version")
    assert result.returncode == 0, result.stderr
    provenance = json.loads(result.stdout)
    assert (provenance.pop("git_commit"), provenance.pop("image_version")) == (image.commit, image.version)
    checkouts = json.loads(run([sys.executable, "-m", "housing_predictor", "--version"], cwd=image.checkout).stdout)
    assert provenance == {k: v for k, v in checkouts.items() if k not in ("git_commit", "image_version")}  # models, metrics
    assert list(provenance["models"]) == list(MODELS)


def shuffled_test_split(checkout: Path) -> str:
    """data/test.csv's features, columns in another order (any order is valid input)."""
    rows = list(csv.DictReader(io.StringIO((checkout / "data" / "test.csv").read_text())))
    columns = [*linear.FEATURES[3:], *linear.FEATURES[:3]]
    return "\n".join([",".join(columns), *(",".join(row[c] for c in columns) for row in rows)]) + "\n"


def test_predict_gives_the_checkouts_predictor_bytes_from_stdin_and_in_a_mounted_folder(image, tmp_path):
    text = shuffled_test_split(image.checkout)
    for model in MODELS:
        result = run_image(image, "predict", "--model", model, stdin=text)
        assert result.returncode == 0, result.stderr
        assert result.stdout == checkout_predict(image, model, text), f"{model}: the image predicts otherwise than the checkout"
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # the image's user is not this machine's
    (shared / "in.csv").write_text(SAMPLE.read_text())
    files = ("--input", "/data/in.csv", "--output", "/data/out.csv")
    result = run_image(image, "predict", "--model", "q16", *files, options=("-v", f"{shared}:/data"))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert (shared / "out.csv").read_text() == checkout_predict(image, "q16", SAMPLE.read_text())
    assert sorted(p.name for p in shared.iterdir()) == ["in.csv", "out.csv"]  # no temp file left


def test_bad_input_and_a_corrupted_model_file_are_one_line_and_exit_2(image, tmp_path):
    """The CLI's whole table of hostile input is tests/test_predict_hostile.py; here, that the image
    reports alike what its user can get wrong: the input, the model files."""
    header, row = SAMPLE.read_text().splitlines()[:2]
    bad_row = header + "\n" + row + "\n" + "x," + row.split(",", 1)[1] + "\n"
    assert_one_line_error(run_image(image, "predict", "--model", "q8", stdin=bad_row), "line 3, column")
    shutil.copytree(image.checkout / "models", tmp_path / "models")  # what the image ships
    data = bytearray((tmp_path / "models" / "q8.safetensors").read_bytes())
    data[-3] ^= 0x01  # one bit of the tensors
    (tmp_path / "models" / "q8.safetensors").write_bytes(bytes(data))
    options = ("-v", f"{tmp_path / 'models'}:/models:ro")
    assert_one_line_error(
        run_image(image, "--models-dir", "/models", "selfcheck", options=options), "q8.safetensors is corrupted"
    )


def test_the_healthcheck_is_healthy_while_another_command_runs(image):
    """The HEALTHCHECK runs in every container of the image: with no server in it (selfcheck,
    predict) there is nothing to check."""
    assert run_python(image, "-m", "housing_predictor.healthcheck").strip() == "healthy: no `serve` process, nothing to check"


# --- under the Deployment's constraints ---------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """How deploy/base/deployment.yaml runs the image, as `docker run` options."""

    options: tuple[str, ...]
    args: tuple[str, ...]
    probes: dict[str, str]  # probe -> HTTP path
    grace_seconds: int


def quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    number, unit = re.fullmatch(r"(\d+)([KMG]i?)?", str(quantity)).groups()
    return int(number) * units.get(unit, 1)


def deployment_pod() -> Pod:
    """The Deployment's security context, emptyDir mounts, memory limit, env, args, probes and grace
    period, read from the manifest (the first container: the server)."""
    [deployment] = [d for d in yaml.safe_load_all(DEPLOYMENT.read_text()) if d and d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    security = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    user = security.get("runAsUser")
    options = [*(["--user", f"{user}:{security.get('runAsGroup', user)}"] if user is not None else [])]
    if security.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    if security.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    options += [f"--cap-drop={c}" for c in security.get("capabilities", {}).get("drop", [])]
    options += [f"--cap-add={c}" for c in security.get("capabilities", {}).get("add", [])]
    empty_dirs = {v["name"]: v["emptyDir"] or {} for v in spec.get("volumes", []) if "emptyDir" in v}
    for mount in container.get("volumeMounts", []):
        if mount["name"] in empty_dirs:
            size = empty_dirs[mount["name"]].get("sizeLimit")
            options += ["--tmpfs", f"{mount['mountPath']}:rw,exec,mode=1777" + (f",size={quantity_bytes(size)}" if size else "")]
    if memory := container.get("resources", {}).get("limits", {}).get("memory"):
        options += ["--memory", str(quantity_bytes(memory)), "--memory-swap", str(quantity_bytes(memory))]  # no swap, as a node
    options += [f"--env={e['name']}={e['value']}" for e in container.get("env", []) if "value" in e]
    probes = {p: container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe") if p in container}
    args = tuple(container.get("command", [])) + tuple(container.get("args", []))
    return Pod(tuple(options), args, probes, int(spec.get("terminationGracePeriodSeconds", 30)))


def container_state(name: str) -> dict:
    return json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)


def wait_for(predicate, what: str, seconds: float, name: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        state = container_state(name)
        assert state["Running"], f"the container stopped ({state['Status']}, exit {state['ExitCode']}) before {what}"
        time.sleep(0.2)
    pytest.fail(f"no {what} within {seconds:.0f} s:\n{docker('logs', name, check=False).stderr[-2000:]}")


def http(port: int, path: str, body: bytes | None = None, content_type: str = "application/json") -> tuple[int, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:  # a 4xx or 5xx raises HTTPError
        return response.status, json.loads(response.read())


def test_under_the_deployments_constraints_it_selfchecks_serves_its_probes_and_stops_within_the_grace_period(
    image, request, figure
):
    """The default command (selfcheck), then serve, with the Deployment's user, read-only root,
    emptyDir mounts (tmpfs), capabilities, no-new-privileges, memory limit, env and args; on this
    machine's loopback (host network, a free port: `--host/--port` after the manifest's args)
    instead of the pod's own network. The HEALTHCHECK is the image's, its interval shortened."""
    pod = deployment_pod()
    selfcheck = run_image(image, options=pod.options)  # the default command (its lines: test_predict)
    assert selfcheck.returncode == 0 and f"selfcheck passed: {len(MODELS)} models" in selfcheck.stdout, selfcheck
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        name, port = f"housing-mlops-test-{uuid.uuid4().hex[:8]}", probe.getsockname()[1]
    docker(
        "run", "-d", "--name", name, "--network", "host", "--health-interval", "1s", *pod.options, image.ref,
        *pod.args, "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    request.addfinalizer(lambda: docker("rm", "-f", name, check=False))

    def answers(path: str):
        try:
            return http(port, path)[0] == 200
        except OSError:
            return False

    for probe, path in pod.probes.items():
        wait_for(lambda path=path: answers(path), f"200 on {path} ({probe})", 60, name)
    sample = SAMPLE.read_text()
    rows = [[float(v) for v in line.split(",")] for line in sample.splitlines()[1:]]
    body = json.dumps({"inputs": [{"name": "features", "shape": [len(rows), 8], "datatype": "FP64", "data": rows}]}).encode()
    expected = {model: [float(v) for v in checkout_predict(image, model, sample).splitlines()[1:]] for model in MODELS}
    for model in MODELS:
        status, response = http(port, f"/v2/models/{model}/infer", body)
        assert status == 200 and response["outputs"][0]["data"] == expected[model], (model, status, response)
    assert http(port, "/invocations", sample.encode(), "text/csv") == (200, {"predictions": expected["float"]})
    wait_for(lambda: (container_state(name).get("Health") or {}).get("Status") == "healthy", "`healthy` (HEALTHCHECK)", 30, name)

    start = time.monotonic()
    docker("stop", "--time", str(pod.grace_seconds), name, timeout=pod.grace_seconds + 30)
    stopped_in = time.monotonic() - start
    state = container_state(name)
    figure(
        f"serve under the Deployment's constraints: `docker stop` took {stopped_in:.2f} s of its {pod.grace_seconds} s grace period"
    )
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False), docker("logs", name, check=False).stderr[-2000:]
    assert stopped_in < pod.grace_seconds


# --- the push: scripts/push_image.sh, pulled back by digest ------------------------------------------


@pytest.fixture
def registry(image) -> str:
    address = os.environ.get("REGISTRY")
    if not address:
        unavailable("no registry to push to: set REGISTRY=host:port (e.g. `docker run -d -p 127.0.0.1:5000:5000 registry:3`)")
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=10) as response:
            assert response.status == 200
    except OSError as error:
        pytest.fail(f"REGISTRY={address} does not answer /v2/: {error}")
    return address


def push(image: Image, ref: str, name: str, summary: Path) -> subprocess.CompletedProcess:
    environment = event_environment(ref, name, image.commit) | {"GITHUB_STEP_SUMMARY": str(summary)}
    return run(["bash", "scripts/push_image.sh", image.ref], cwd=REPO, check=False, env=environment, timeout=600)


def tags_in_registry(address: str, repository: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/{repository}/tags/list", timeout=10) as response:
            return json.loads(response.read())["tags"] or []
    except urllib.error.HTTPError as error:
        assert error.code == 404, error  # a repository never pushed to
        return []


def test_push_refuses_a_tag_that_names_another_image(image, registry, tmp_path):
    repository = f"housing-mlops-refused-{uuid.uuid4().hex[:8]}"
    name, branch = f"{registry}/{repository}", "main"
    other = f"{name}:sha-{image.commit}"  # one of the ref's tags, on another image: the tested one with a label
    docker("tag", image.ref, f"{name}:{branch}")
    docker("tag", image.ref, f"{name}:latest")
    container = docker("create", image.ref).stdout.strip()
    try:
        docker("commit", "--change", "LABEL tested=no", container, other)
    finally:
        docker("rm", container)
    try:
        result = push(image, f"refs/heads/{branch}", name, tmp_path / "summary.md")
        assert_one_line_error(result, f"{other} is sha256:", status=1)
        assert result.stderr.rstrip().endswith("refusing to push")
        assert tags_in_registry(registry, repository) == []
    finally:
        docker("image", "rm", other, f"{name}:{branch}", f"{name}:latest", check=False)


def test_pushed_it_is_pulled_back_by_digest(image, registry, tmp_path, figure):
    """Last of this file: the tested image leaves the engine between its push and its pull, so that
    the pull really fetches it; its tags are put back after."""
    name = f"{registry}/housing-mlops"
    branch = f"test-{uuid.uuid4().hex[:8]}"
    pushed = [f"{name}:sha-{image.commit}", f"{name}:{branch}"]
    tags = json.loads(inspect(image.id, "{{json .RepoTags}}"))  # put back at the end
    for tag in pushed:
        docker("tag", image.ref, tag)
    summary = tmp_path / "summary.md"
    result = push(image, f"refs/heads/{branch}", name, summary)
    assert result.returncode == 0, result.stderr
    reference = result.stdout.strip()
    assert re.fullmatch(rf"{re.escape(name)}@sha256:[0-9a-f]{{64}}", reference), result.stdout
    assert f"`{reference}`" in summary.read_text() and all(f"`{tag}`" in summary.read_text() for tag in pushed)

    try:
        for tag in set(tags) | set(pushed):
            docker("image", "rm", "--no-prune", tag)
        assert docker("image", "inspect", image.id, check=False).returncode != 0, "the image is still here"
        start = time.monotonic()
        docker("pull", "--quiet", reference, timeout=600)
        figure(f"pulled {reference} back in {time.monotonic() - start:.2f} s")
        assert inspect(reference, "{{.Id}}") == image.id
    finally:
        if docker("image", "inspect", reference, check=False).returncode == 0:
            for tag in tags:
                docker("tag", reference, tag)
            docker("image", "rm", reference, *(set(pushed) - set(tags)), check=False)  # what only this test added
    assert inspect(image.ref, "{{.Id}}") == image.id
