"""The predictor image, built and run by a real Docker engine.

One image per session, then every check on that image: its configuration, the user it runs as,
its size, what is installed in it, `selfcheck` and `--version`, `predict` against the checkout's
own predictor (byte for byte), bad input, `serve` (V2 and /invocations, the HEALTHCHECK, `docker
stop`), and the push: through scripts/push_image.sh to a registry and pulled back by digest.

Which image:
- TEST_IMAGE set (the workflow's image job, .ci/run): that image, already built from this checkout
  after `dvc repro`; the checkout's models and predictor are the reference.
- else: built here by scripts/build_image.sh from the `built_repo` fixture (a fresh copy after
  `dvc repro`), on $PYTHON_IMAGE when that is set; removed at the end.
The push needs a registry: REGISTRY (host:port, plain HTTP on loopback, e.g. `docker run -d
-p 127.0.0.1:5000:5000 registry:3`). With CI=true a missing engine or registry is a failure;
elsewhere these tests skip, saying why. Every container runs with `--network none` but the server
(`--network host`, listening on 127.0.0.1 only).
"""

from __future__ import annotations

import csv
import http.client
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

from housing_predictor import linear
from housing_predictor.paths import MODELS

from conftest import REPO, run

pytestmark = pytest.mark.slow

FEATURES = list(linear.FEATURES)
SAMPLE = REPO / "tests" / "data" / "predict_sample.csv"  # what the workflow's users send: a few rows
RUNTIME_LAYER_LIMIT_BYTES = 60 * 2**20
TRAINING_MODULES = ("sklearn", "scipy", "joblib", "pandas", "yaml", "dvc")  # the pipeline's, never the image's
STOP_TIMEOUT_SECONDS = 10  # `docker stop`'s default: SIGTERM, then SIGKILL after this long
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


@pytest.fixture(scope="session")
def engine() -> str:
    """The engine's version; skip (or fail in CI) when none answers."""
    if shutil.which("docker") is None:
        unavailable("no Docker engine: no `docker` command on PATH")
    try:
        result = run(["docker", "version", "--format", "{{.Server.Version}}"], cwd=REPO, check=False, timeout=30)
    except subprocess.TimeoutExpired:
        unavailable("no Docker engine: `docker version` did not answer in 30 s")
    if result.returncode != 0 or not result.stdout.strip():
        why = (result.stderr.strip().splitlines() or ["no server version"])[-1]
        unavailable(f"no Docker engine answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): {why}")
    return result.stdout.strip()


@dataclass(frozen=True)
class Image:
    ref: str  # what `docker run` is given
    id: str
    checkout: Path  # what it was built from: the reference models and predictor
    commit: str
    version: str


def project_version(checkout: Path) -> str:
    return tomllib.loads((checkout / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="session")
def image(engine, request, figure) -> Image:
    given = os.environ.get("TEST_IMAGE")
    if given:
        checkout = REPO
        result = docker("image", "inspect", "--format", "{{.Id}}", given, check=False)
        if result.returncode != 0:
            pytest.fail(f"TEST_IMAGE={given} is not an image of this engine: {result.stderr.strip()}")
        needed = [*(f"models/{m}.safetensors" for m in MODELS), *(f"metrics/{m}.json" for m in MODELS), "data/test.csv"]
        missing = [name for name in needed if not (checkout / name).is_file()]
        if missing:
            pytest.fail(f"TEST_IMAGE is checked against this checkout's artifacts, and {missing} are missing: run `dvc repro`")
        ref, image_id = given, result.stdout.strip()
    else:
        checkout = request.getfixturevalue("built_repo")
        ref = f"housing-mlops:pytest-{uuid.uuid4().hex[:8]}"
        environment = {**os.environ, "PYTHON": sys.executable}
        built = run(
            ["bash", str(REPO / "scripts" / "build_image.sh"), ref, str(checkout)], cwd=REPO, env=environment, timeout=900
        )
        figure(built.stdout.strip())
        # --no-prune: its build's layers stay, the cache of the next build
        request.addfinalizer(lambda: docker("image", "rm", "--no-prune", ref, check=False))
        image_id = inspect(ref, "{{.Id}}")
    commit = run(["git", "rev-parse", "HEAD"], cwd=checkout).stdout.strip()
    return Image(ref, image_id, checkout, commit, project_version(checkout))


def run_image(image: Image, *args: str, stdin: str | None = None, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``docker run --rm -i --network none [options] IMAGE [args]``: the entrypoint, or the default CMD."""
    return docker("run", "--rm", "-i", "--network", "none", *options, image.ref, *args, check=False, input=stdin)


def run_python(image: Image, code: str, options: tuple[str, ...] = ()) -> str:
    """Python code run in the image (its interpreter, its working directory and user)."""
    result = docker("run", "--rm", "--network", "none", *options, "--entrypoint", "python", image.ref, "-c", code)
    return result.stdout


def checkout_predict(image: Image, model: str, text: str) -> str:
    """What the checkout's own predictor writes for ``text`` (its code, its models)."""
    return run([sys.executable, "-m", "housing_predictor", "predict", "--model", model], cwd=image.checkout, input=text).stdout


# --- what the image is ------------------------------------------------------------------------------


def test_the_image_is_configured_as_promised(image):
    config = json.loads(inspect(image.ref))["Config"]
    assert config["Entrypoint"] == ["python", "-m", "housing_predictor"]
    assert config["Cmd"] == ["selfcheck"]
    assert config["WorkingDir"] == "/app"
    assert set(config["ExposedPorts"]) == {"8080/tcp"}
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "housing_predictor.healthcheck"]
    environment = dict(entry.split("=", 1) for entry in config["Env"])
    assert environment["GIT_COMMIT"] == image.commit and environment["IMAGE_VERSION"] == image.version
    assert environment["SERVE_HOST"] == "0.0.0.0" and environment["SERVE_PORT"] == "8080"  # what `-p 8080:8080` needs
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == image.commit
    assert labels["org.opencontainers.image.version"] == image.version
    assert "org.opencontainers.image.source" in labels


def test_it_runs_as_a_non_root_uid_that_cannot_change_the_image(image):
    probe = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "for path in ('/app/models/q8.safetensors', '/app/housing_predictor/__init__.py', '/app/new'):\n"
        "    try:\n"
        "        open(path, 'a').close(); print('writable', path)\n"
        "    except PermissionError:\n"
        "        pass\n"
    )
    ids, *writable = run_python(image, probe).splitlines()
    uid, gid = ids.split()
    assert uid != "0" and gid != "0", (uid, gid)
    assert inspect(image.ref, "{{.Config.User}}") == f"{uid}:{gid}"  # numeric: verifiable by runAsNonRoot
    assert writable == []


def test_its_size_and_its_runtime_layers_size(image, figure):
    """Printed: the image, and the layer of the runtime requirements (pip install, then pruned)."""
    size = int(inspect(image.ref, "{{.Size}}"))
    history = docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", image.ref).stdout
    layers = [line.split("\t", 1) for line in history.splitlines()]
    [runtime] = [int(size_bytes) for size_bytes, created_by in layers if "pip install" in created_by]
    figure(f"image {image.ref}: {size / 2**20:.1f} MiB; runtime layer (pip install + prune): {runtime / 2**20:.1f} MiB")
    assert runtime <= RUNTIME_LAYER_LIMIT_BYTES, f"the runtime layer takes {runtime / 2**20:.1f} MiB"


def test_it_holds_the_predictor_its_artifacts_and_only_the_runtime(image):
    probe = (
        "import importlib.util, os, sys, housing_predictor\n"
        "print(sys.version_info[:2] == (3, 11), housing_predictor.__file__)\n"
        f"print(sorted(m for m in {TRAINING_MODULES!r} if importlib.util.find_spec(m)))\n"
        "print(sorted(os.listdir('.')), sorted(os.listdir('models')), sorted(os.listdir('metrics')))\n"
    )
    version_and_package, installed, contents = run_python(image, probe).splitlines()
    assert version_and_package == "True /app/housing_predictor/__init__.py"
    assert installed == "[]"  # scikit-learn, scipy, joblib... are not even installed
    # what the Dockerfile copies through the .dockerignore allowlist: no pickle, no data, no tests
    models = sorted([*(f"{m}.safetensors" for m in MODELS), "selfcheck.csv"])
    assert contents == f"{['housing_predictor', 'metrics', 'models']} {models} {sorted(f'{m}.json' for m in MODELS)}"


def test_selfcheck_is_the_default_command_and_passes_for_every_model(image):
    result = run_image(image)
    assert result.returncode == 0, result.stderr
    *per_model, verdict = result.stdout.splitlines()
    assert sorted(line.split(":", 1)[0] for line in per_model) == sorted(MODELS), result.stdout  # each once
    assert verdict.startswith(f"selfcheck passed: {len(MODELS)} models"), result.stdout


def test_version_names_the_commit_and_every_model(image):
    result = run_image(image, "--version")
    assert result.returncode == 0, result.stderr
    provenance = json.loads(result.stdout)
    assert provenance["git_commit"] == image.commit
    assert provenance["image_version"] == image.version
    assert provenance["metrics"] == {m: json.loads((image.checkout / "metrics" / f"{m}.json").read_text()) for m in MODELS}
    assert sorted(provenance["models"]) == sorted(MODELS)
    assert all(re.fullmatch(r"[0-9a-f]{64}", m["params_sha256"]) for m in provenance["models"].values())


def test_selfcheck_and_predict_load_no_training_code_and_no_server(image):
    """Both commands in one interpreter of the image, then what they imported."""
    script = (
        "import sys, runpy, io, contextlib\n"
        "for argv in (['selfcheck'], ['predict', '--model', 'q8', '--input', 'models/selfcheck.csv', '--output', '/dev/null']):\n"
        "    sys.argv = ['housing_predictor', *argv]\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        runpy.run_module('housing_predictor', run_name='__main__')\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = {name.split(".")[0] for name in run_python(image, script).split()}
    assert {"numpy", "safetensors", "housing_predictor"} <= loaded
    assert not loaded & {*TRAINING_MODULES, "stages", "uvicorn", "starlette"}


# --- predict ------------------------------------------------------------------------------------------


def test_sample_input_has_the_feature_header():
    sample = SAMPLE.read_text().splitlines()
    assert sample[0].split(",") == FEATURES
    assert len(sample) > 1 and all(len(line.split(",")) == len(FEATURES) for line in sample[1:])


def shuffled_test_split(checkout: Path) -> str:
    """data/test.csv's features, columns in another order (any order is valid input)."""
    rows = list(csv.DictReader(io.StringIO((checkout / "data" / "test.csv").read_text())))
    columns = FEATURES[3:] + FEATURES[:3]
    return "\n".join([",".join(columns), *(",".join(row[c] for c in columns) for row in rows)]) + "\n"


@pytest.mark.parametrize("model", MODELS)
def test_predict_gives_the_checkouts_predictor_bytes(image, model):
    for text in (SAMPLE.read_text(), shuffled_test_split(image.checkout)):
        result = run_image(image, "predict", "--model", model, stdin=text)
        assert result.returncode == 0, result.stderr
        expected = checkout_predict(image, model, text)
        assert result.stdout == expected, f"{model}: the image predicts otherwise than the checkout"
        assert len(expected.splitlines()) == len(text.splitlines())  # the header, then one line per row


def test_predict_reads_and_writes_files_in_a_mounted_folder(image, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # the image's user is not this machine's
    (shared / "in.csv").write_text(SAMPLE.read_text())
    (shared / "in.csv").chmod(0o644)
    mount = ("-v", f"{shared}:/data")
    result = run_image(image, "predict", "--model", "q16", "--input", "/data/in.csv", "--output", "/data/out.csv", options=mount)
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert (shared / "out.csv").read_text() == checkout_predict(image, "q16", SAMPLE.read_text())
    assert sorted(p.name for p in shared.iterdir()) == ["in.csv", "out.csv"]  # no temp file left


HEADER = ",".join(FEATURES)
ROW = "8.3252,41.0,6.984126984126984,1.0238095238095237,322.0,2.5555555555555554,37.88,-122.23"
BAD_INPUTS = {  # the CLI's whole table is tests/test_predict_hostile.py; here, that the image reports them alike
    "missing column": (",".join(FEATURES[:-1]) + "\n" + ROW.rsplit(",", 1)[0] + "\n", "missing column Longitude"),
    "unknown column": (HEADER + ",Colour\n" + ROW + ",1\n", "unknown column 'Colour'"),
    "non-numeric": (
        HEADER + "\n" + ROW + "\n" + ROW.replace("41.0", "forty-one") + "\n",
        "line 3, column HouseAge: 'forty-one' is not a number",
    ),
    "NaN": (HEADER + "\n" + ROW.replace("322.0", "nan") + "\n", "line 2, column Population: 'nan' is not a finite number"),
    "overflow": (HEADER + "\n" + ROW.replace("37.88", "1e999") + "\n", "line 2, column Latitude: '1e999' is not a finite number"),
    "empty input": ("", "stdin is empty"),
    "header only": (HEADER + "\n", "stdin has a header but no data rows"),
    "ragged row": (HEADER + "\n" + ROW + "\n" + ROW + ",1.0\n", "stdin line 3 has 9 fields, expected 8"),
    "binary": (HEADER + "\n" + ROW + "\n\0\n", "stdin line 3 is not UTF-8 text"),
}


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(image, case):
    text, message = BAD_INPUTS[case]
    assert_one_line_error(run_image(image, "predict", "--model", "q8", stdin=text), message)


def test_unknown_model_and_command_are_one_line_and_exit_2(image):
    assert_one_line_error(run_image(image, "predict", "--model", "q4", stdin=HEADER + "\n" + ROW + "\n"), "invalid choice: 'q4'")
    assert_one_line_error(run_image(image, "train"), "invalid choice: 'train'")


@pytest.fixture
def models_copy(image, tmp_path) -> Path:
    """The image's model folder, copied out of it (`docker cp`), to be damaged and mounted back."""
    container = docker("create", image.ref).stdout.strip()
    try:
        docker("cp", f"{container}:/app/models", str(tmp_path))
    finally:
        docker("rm", container)
    return tmp_path / "models"


@pytest.mark.parametrize("damage", ["missing", "corrupted"])
def test_a_missing_or_corrupted_model_is_one_line_and_exit_2(image, models_copy, damage):
    model = models_copy / "q8.safetensors"
    if damage == "missing":
        model.unlink()
    else:
        data = bytearray(model.read_bytes())
        data[-3] ^= 0x01  # one bit of the tensors
        model.write_bytes(bytes(data))
    options = ("-v", f"{models_copy}:/models:ro")
    message = f"q8.safetensors is {damage}"
    predict = run_image(image, "--models-dir", "/models", "predict", "--model", "q8", stdin=SAMPLE.read_text(), options=options)
    assert_one_line_error(predict, message)
    assert_one_line_error(run_image(image, "--models-dir", "/models", "selfcheck", options=options), message)


def test_help_for_each_command(image):
    for args in (["--help"], ["predict", "--help"], ["selfcheck", "--help"], ["serve", "--help"]):
        result = run_image(image, *args)
        assert result.returncode == 0 and result.stdout.startswith("usage: "), result.stderr


# --- serve --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_json(
    port: int, method: str, path: str, body: str | None = None, content_type: str = "application/json"
) -> tuple[int, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": content_type} if body is not None else {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def container_state(name: str) -> dict:
    return json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)


def wait_for(predicate, what: str, seconds: float, name: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        state = container_state(name)
        assert state["Running"], f"the container stopped ({state['Status']}, exit {state['ExitCode']}) before {what}"
        time.sleep(0.2)
    pytest.fail(f"no {what} within {seconds:.0f} s:\n{docker('logs', name, check=False).stderr[-2000:]}")


def test_the_healthcheck_is_healthy_while_another_command_runs(image):
    """The HEALTHCHECK runs in every container of the image: with no server in it (selfcheck,
    predict) there is nothing to check."""
    result = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python", image.ref, "-m", "housing_predictor.healthcheck"
    )
    assert result.stdout.strip() == "healthy: no `serve` process, nothing to check"


@pytest.fixture
def server(image, request):
    """`docker run -d IMAGE serve` on this machine's loopback (host network, a free port). The health
    check is the image's own command; only its interval is shortened (the image says 30 s)."""
    name, port = f"housing-mlops-test-{uuid.uuid4().hex[:8]}", free_port()
    docker(
        "run", "-d", "--name", name, "--network", "host", "--health-interval", "1s", image.ref,
        "serve", "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    request.addfinalizer(lambda: docker("rm", "-f", name, check=False))

    def ready() -> bool:
        try:
            return request_json(port, "GET", "/v2/health/ready") == (200, {"ready": True})
        except OSError:
            return False

    wait_for(ready, "readiness on /v2/health/ready", 60, name)
    return name, port


def test_serve_answers_v2_and_invocations_turns_healthy_and_stops_at_once(image, server, figure):
    name, port = server
    sample = SAMPLE.read_text()
    rows = [[float(v) for v in line.split(",")] for line in sample.splitlines()[1:]]
    for model in MODELS:
        expected = [float(v) for v in checkout_predict(image, model, sample).splitlines()[1:]]
        request = {"inputs": [{"name": "features", "shape": [len(rows), 8], "datatype": "FP64", "data": rows}]}
        status, response = request_json(port, "POST", f"/v2/models/{model}/infer", json.dumps(request))
        assert status == 200 and response["outputs"][0]["data"] == expected, (model, status, response)
    expected = [float(v) for v in checkout_predict(image, "float", sample).splitlines()[1:]]
    assert request_json(port, "POST", "/invocations", sample, "text/csv") == (200, {"predictions": expected})

    def healthy() -> dict | None:
        health = container_state(name).get("Health") or {}
        return health if health.get("Status") == "healthy" else None

    health = wait_for(healthy, "`healthy` from the HEALTHCHECK", 30, name)
    assert health["Log"][-1]["ExitCode"] == 0 and health["Log"][-1]["Output"].strip() == "healthy: ready"

    start = time.monotonic()
    docker("stop", "--time", str(STOP_TIMEOUT_SECONDS), name, timeout=STOP_TIMEOUT_SECONDS + 30)
    stopped_in = time.monotonic() - start
    state = container_state(name)
    figure(f"serve: `docker stop` took {stopped_in:.2f} s (SIGKILL after {STOP_TIMEOUT_SECONDS} s)")
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False), docker("logs", name, check=False).stderr[-2000:]


# --- the push: scripts/push_image.sh, then pulled back by digest --------------------------------------


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


def push(image: Image, tags: list[str], summary: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    environment |= {"TAGS": "\n".join(tags) + "\n", "GITHUB_STEP_SUMMARY": str(summary)}
    return run(["bash", "scripts/push_image.sh", image.ref], cwd=REPO, check=False, env=environment, timeout=600)


def registry_has(address: str, repository: str, reference: str) -> bool:
    request = urllib.request.Request(
        f"http://{address}/v2/{repository}/manifests/{reference}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise


def test_push_refuses_a_tag_that_names_another_image(image, registry, tmp_path):
    other = f"{registry}/housing-mlops:not-tested-{uuid.uuid4().hex[:8]}"
    container = docker("create", image.ref).stdout.strip()  # another image: the tested one, committed with a label
    try:
        docker("commit", "--change", "LABEL tested=no", container, other)
    finally:
        docker("rm", container)
    try:
        result = push(image, [other], tmp_path / "summary.md")
        assert result.returncode == 1, result.stdout + result.stderr
        [message] = result.stderr.splitlines()
        assert message.startswith(f"error: {other} is image sha256:") and message.endswith("refusing to push it"), message
        assert not registry_has(registry, "housing-mlops", other.rsplit(":", 1)[1])
    finally:
        docker("image", "rm", other, check=False)


def test_push_needs_tags(image, tmp_path):
    result = push(image, [], tmp_path / "summary.md")
    assert (result.returncode, result.stderr.strip()) == (2, "error: no tags to push (TAGS is empty)")


def test_pushed_and_pulled_back_by_digest_it_is_the_tested_image(image, registry, tmp_path, figure):
    """Last of this file: the tested image leaves the engine between its push and its pull, so that
    the pull really fetches it; its tags are put back after."""
    repository = f"{registry}/housing-mlops"
    tag = f"{repository}:test-{uuid.uuid4().hex[:8]}"
    docker("tag", image.ref, tag)
    summary = tmp_path / "summary.md"
    result = push(image, [tag], summary)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = [d for d in re.findall(r"`([^`\s]+@sha256:[0-9a-f]{64})`", summary.read_text()) if d.startswith(f"{repository}@")]
    assert len(printed) == 1, summary.read_text()
    [digest] = printed
    assert f"`{tag}`" in summary.read_text() and digest in result.stdout
    assert registry_has(registry, "housing-mlops", digest.split("@", 1)[1])

    tags = json.loads(inspect(image.id, "{{json .RepoTags}}"))
    try:
        for name in tags:
            docker("image", "rm", "--no-prune", name)
        assert docker("image", "inspect", image.id, check=False).returncode != 0, "the image is still here"
        start = time.monotonic()
        docker("pull", "--quiet", digest, timeout=600)
        figure(f"pulled {digest} back in {time.monotonic() - start:.2f} s")
        assert inspect(digest, "{{.Id}}") == image.id
    finally:
        if docker("image", "inspect", digest, check=False).returncode == 0:
            for name in tags:
                docker("tag", digest, name)
            docker("image", "rm", digest, tag, check=False)  # what only this test added
    assert inspect(image.ref, "{{.Id}}") == image.id
