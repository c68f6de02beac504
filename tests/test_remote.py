"""The DVC remote on a real S3 endpoint: moto's S3 server on 127.0.0.1, set up as docs/remote.md
says, with IAM authentication on, so a wrong key is refused as by AWS; the run-cache it carries and
the model registry (`dvc artifacts get`) it serves.

One pipeline build (the `built_repo` fixture) is pushed once; each test then works in its own
`git clone` of a bare origin, the way a teammate or a CI runner starts: no artifact, only git.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from housing_predictor import paths

from conftest import REPO, run

pytestmark = pytest.mark.slow
DVC = [sys.executable, "-m", "dvc"]
BUCKET = "housing-mlops"
REMOTE_URL = f"s3://{BUCKET}/dvc"
REGION = "us-east-1"
TIMEOUT = 180  # seconds: the longest any one command may take here


def cached_outputs(stage: dict) -> list[str]:
    """The stage's outputs DVC caches (and pushes): all but the `cache: false` ones kept in git."""
    entries = [next(iter(out.items())) if isinstance(out, dict) else (out, {}) for out in stage.get("outs", [])]
    return [path for path, options in entries if (options or {}).get("cache", True)]


DVC_STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
# The stages with something to pull (sweep's and report's outputs are all in git), and what the
# remote holds of dvc.lock's outputs besides the runs.
STAGES = [name for name, stage in DVC_STAGES.items() if cached_outputs(stage)]
CACHED = [path for stage in DVC_STAGES.values() for path in cached_outputs(stage)]
REGISTRY = yaml.safe_load((REPO / "dvc.yaml").read_text())["artifacts"]
VERSION = "v0.1.0"  # the version the builder registers each model at (a GTO tag, docs/remote.md)


@dataclass(frozen=True)
class S3:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    empty_file: Path  # AWS's config and credentials files for the tests: none of this machine's


def _moto_auth(endpoint: str, free_actions: str) -> None:
    """Require valid IAM credentials after `free_actions` more requests (moto's reset-auth API)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=free_actions.encode(), headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _bounded(action, what: str, seconds: float = 30) -> None:
    """Run `action` (moto's start or stop, which wait on a thread without a timeout), bounded."""
    worker = threading.Thread(target=action, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    if worker.is_alive():
        pytest.fail(f"moto's S3 server did not {what} within {seconds:g} s")


def _create_bucket_and_user(endpoint: str) -> tuple[str, str]:
    """The bucket, and an IAM user allowed to use S3: its access key is what DVC gets."""
    admin = {"endpoint_url": endpoint, "region_name": REGION}
    admin |= {"aws_access_key_id": "admin", "aws_secret_access_key": "admin"}  # before auth is on
    boto3.client("s3", **admin).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", **admin)
    iam.create_user(UserName="dvc")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="dvc", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="dvc")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> S3:
    """moto's S3 server on 127.0.0.1, an ephemeral port; stopped when the module's tests end."""
    empty_file = tmp_path_factory.mktemp("aws") / "empty"
    empty_file.touch()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    _bounded(server.start, "start")
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        key_id, secret = _create_bucket_and_user(endpoint)
        _moto_auth(endpoint, "0")
        yield S3(endpoint, key_id, secret, empty_file)
    finally:
        try:
            _moto_auth(endpoint, "inf")  # moto's settings are process-wide: leave them as found
        finally:
            _bounded(server.stop, "stop")


def dvc_env(s3: S3, secret: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a user whose credentials are in env vars (docs/remote.md), and nothing else of AWS:
    no profile or config file of this machine, no instance metadata lookup (169.254.169.254)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret or s3.secret_access_key,
        "AWS_CONFIG_FILE": str(s3.empty_file),
        "AWS_SHARED_CREDENTIALS_FILE": str(s3.empty_file),
        "AWS_EC2_METADATA_DISABLED": "true",
        # docs/remote.md: what S3-compatible stores may need (DVC issue 10695); moto accepts either way.
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        "GIT_AUTHOR_NAME": "tests",
        "GIT_AUTHOR_EMAIL": "tests@housing-mlops",
        "GIT_COMMITTER_NAME": "tests",
        "GIT_COMMITTER_EMAIL": "tests@housing-mlops",
    }
    return env | extra


def dvc(args: list[str], cwd: Path, env: dict[str, str], check: bool = True):
    return run([*DVC, *args], cwd=cwd, env=env, check=check, timeout=TIMEOUT)


def remote_sh(args: list[str], cwd: Path, env: dict[str, str]):
    """scripts/remote.sh of the repository under test, run in `cwd` (a clone)."""
    return run(["bash", "scripts/remote.sh", *args], cwd=cwd, env=env, timeout=TIMEOUT)


def snapshot(repo: Path) -> dict[str, str]:
    """sha256 of every file of the workspace and of DVC's cache (git's own files and DVC's
    scratch folder aside): what a failed push or pull must leave exactly as it was."""
    files = {}
    for path in sorted(repo.rglob("*")):
        relative = path.relative_to(repo)
        if path.is_file() and relative.parts[0] != ".git" and relative.parts[:2] != (".dvc", "tmp"):
            files[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def bucket_keys(s3: S3) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name=REGION,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def origin(built_repo: Path, s3: S3, tmp_path_factory) -> Path:
    """The team's git remote after one person built, set the remote up as docs/remote.md says,
    committed .dvc/config, registered each model's version and ran `dvc push --run-cache`. Works on
    a copy: built_repo stays as it is."""
    root = tmp_path_factory.mktemp("remote")
    builder = root / "builder"
    shutil.copytree(built_repo, builder, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    env = dvc_env(s3)
    remote_sh([REMOTE_URL, "--endpoint", s3.endpoint, "--region", REGION], builder, env)
    run(["git", "commit", "-qm", "DVC remote", ".dvc/config"], cwd=builder, env=env)
    for name in REGISTRY:
        run([str(Path(sys.executable).parent / "gto"), "register", name, "--version", VERSION], cwd=builder, env=env)
    pushed = dvc(["push", "--run-cache"], builder, env)
    assert "files pushed" in pushed.stdout, pushed.stdout
    bare = root / "origin.git"
    run(["git", "clone", "-q", "--bare", str(builder), str(bare)], cwd=root)
    return bare


def clone(origin: Path, destination: Path) -> Path:
    run(["git", "clone", "-q", str(origin), str(destination)], cwd=destination.parent)
    return destination


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: no remote URL"),
        (["s3://a/b", "--endpoint"], "error: --endpoint needs a URL"),
        (["s3://a/b", "--profile", "x"], "error: unknown option --profile"),
        (["s3://a/b", "s3://c/d"], "error: one URL only"),
        (["https://example.com/dvc"], "error: https://example.com/dvc: this script sets up s3:// or local-folder"),
        (["/srv/dvc", "--region", "us-east-1"], "error: --endpoint and --region are for s3:// remotes"),
    ],
)
def test_remote_sh_refuses_bad_arguments_in_one_line(args, message, origin, tmp_path):
    repo = clone(origin, tmp_path / "clone")
    config = (repo / ".dvc" / "config").read_text()
    result = run(["bash", "scripts/remote.sh", *args], cwd=repo, check=False, timeout=TIMEOUT)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert (repo / ".dvc" / "config").read_text() == config
    assert not (repo / ".dvc" / "config.local").exists()


def test_a_fresh_clone_pulls_what_was_built_from_s3_and_from_a_local_folder(origin, built_repo, s3, tmp_path):
    """From the S3 remote scripts/remote.sh committed (no credential in the file); then from a folder
    remote beside it (docs/remote.md: `remote.sh PATH --local --name NAME`, a relative PATH taken
    from where the script runs), with S3 out of reach. Both: up to date, git clean, selfcheck passes."""
    env = dvc_env(s3)
    first = clone(origin, tmp_path / "first")
    config = (first / ".dvc" / "config").read_text()
    assert f"url = {REMOTE_URL}" in config and f"endpointurl = {s3.endpoint}" in config and f"region = {REGION}" in config
    assert "remote = storage" in config and "key" not in config.lower()
    dvc(["pull"], first, env)
    remote_sh(["../dvc-storage", "--local", "--name", "folder"], first, env)
    assert f"url = {tmp_path / 'dvc-storage'}" in (first / ".dvc" / "config.local").read_text()
    dvc(["push"], first, env)
    second = clone(origin, tmp_path / "second")
    remote_sh(["../dvc-storage", "--local", "--name", "folder"], second, env)
    dvc(["pull"], second, dvc_env(s3, secret="wrong"))  # S3 is not involved any more
    for repo in (first, second):
        for name in CACHED:
            assert (repo / name).read_bytes() == (built_repo / name).read_bytes(), name
        assert dvc(["status"], repo, env).stdout.strip() == "Data and pipelines are up to date."  # `dvc repro` would run nothing
        assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""
        selfcheck = run([sys.executable, "-m", "housing_predictor", "selfcheck"], cwd=repo, env=env, timeout=TIMEOUT)
        assert "selfcheck passed" in selfcheck.stdout


def test_push_sends_every_cached_output_and_the_run_of_every_stage_that_ran(origin, built_repo, s3):
    """`dvc push --run-cache`: every DVC-cached output dvc.lock names, and a run for each stage the
    build ran (a fresh clone's repro skips sweep and report: their outputs are in git). DVC sends no
    copy of a run's git-kept outputs: a clone restores such a run only with them in its own cache."""
    keys = bucket_keys(s3)
    # DVC 3's layout: files/md5/<first 2 hex>/<other 30> for files, runs/<2 hex>/<stage key>/<run> for runs.
    files = {key.removeprefix("dvc/files/md5/").replace("/", "") for key in keys if key.startswith("dvc/files/md5/")}
    lock = yaml.safe_load((built_repo / "dvc.lock").read_text())["stages"]
    assert files == {out["md5"] for stage in lock.values() for out in stage["outs"] if out["path"] in CACHED}
    assert len(files) == len(CACHED)
    runs = {key.split("/")[3] for key in keys if key.startswith("dvc/runs/")}
    ran = [
        line.split("'")[1]
        for line in (built_repo.parent / "repro-output.txt").read_text().splitlines()
        if line.startswith("Running stage '")
    ]
    assert ran and len(runs) == len(ran)  # which stages ran: tests/test_pipeline.py


def test_a_fresh_clone_comes_back_to_committed_params_running_nothing(origin, s3, tmp_path):
    """docs/remote.md's journey: clone, `dvc pull --run-cache`, `dvc repro` runs nothing; `dvc
    commit --force` records the commit's runs here; an experiment; back to the commit's params,
    `dvc repro` restores every stage from the run-cache, report included, runs none, git clean.
    Back to the experiment's params, whose runs it recorded itself: every stage but report."""
    repo = clone(origin, tmp_path / "clone")
    env = dvc_env(s3)
    dvc(["pull", "--run-cache"], repo, env)
    first = dvc(["repro"], repo, env)
    assert "Running stage" not in first.stdout and "Data and pipelines are up to date." in first.stdout, first.stdout
    dvc(["commit", "--force"], repo, env)
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""  # it recorded runs, changed nothing
    ran = dvc(["exp", "run", "-S", "load_data.random_state=7"], repo, env).stdout
    assert all(f"Running stage '{stage}'" in ran for stage in DVC_STAGES), ran
    run(["git", "checkout", "--", "params.yaml"], cwd=repo)
    back = dvc(["repro"], repo, env).stdout
    assert "Running stage" not in back, back
    for stage in DVC_STAGES:
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in back, back
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""
    again = dvc(["exp", "run", "-S", "load_data.random_state=7"], repo, env).stdout
    assert [stage for stage in DVC_STAGES if f"Running stage '{stage}'" in again] == ["report"], again
    assert all(f"Stage '{stage}' is cached" in again for stage in DVC_STAGES if stage != "report"), again


def test_the_registry_gets_each_shipped_model_from_a_clone_url(origin, built_repo, s3, tmp_path):
    """`dvc artifacts get URL NAME`, the latest version or `--rev`: the file, from the DVC remote the
    tagged commit names."""
    env = dvc_env(s3)
    for name, artifact in REGISTRY.items():
        latest, pinned = tmp_path / f"{name}.latest", tmp_path / f"{name}.pinned"
        dvc(["artifacts", "get", str(origin), name, "-o", str(latest)], tmp_path, env)
        dvc(["artifacts", "get", str(origin), name, "--rev", VERSION, "-o", str(pinned)], tmp_path, env)
        assert latest.read_bytes() == pinned.read_bytes() == (built_repo / artifact["path"]).read_bytes(), name
    unknown = dvc(["artifacts", "get", str(origin), "housing-q4", "-o", str(tmp_path / "q4")], tmp_path, env, check=False)
    assert unknown.returncode != 0 and not (tmp_path / "q4").exists()


def test_repro_pull_runs_only_the_stages_a_change_touches(origin, s3, tmp_path):
    """A pull request's CI run: params changed for quantize-8, the rest restored from the remote."""
    repo = clone(origin, tmp_path / "clone")
    params = (repo / "params.yaml").read_text()
    assert "    scale_search: mse" in params
    (repo / "params.yaml").write_text(params.replace("    scale_search: mse", "    scale_search: none", 1))
    repro = dvc(["repro", "--pull"], repo, dvc_env(s3))
    ran = [stage for stage in DVC_STAGES if f"Running stage '{stage}'" in repro.stdout]
    assert ran == ["validate", "quantize-8", "export-onnx", "evaluate", "report"], repro.stdout
    for stage in ["load-data", "train", "quantize-16"]:
        assert f"Pulling data for stage: '{stage}'" in repro.stdout, repro.stdout


def test_an_experiment_round_trips_through_exp_push_and_exp_pull(origin, built_repo, s3, tmp_path):
    env = dvc_env(s3)
    author = clone(origin, tmp_path / "author")
    dvc(["pull"], author, env)
    ran = dvc(["exp", "run", "-n", "coarse-grid", "-S", "quantize.q8.scale_search=none"], author, env)
    assert "Running stage 'quantize-8'" in ran.stdout and "Running stage 'train'" not in ran.stdout
    model = (author / "models/q8.safetensors").read_bytes()
    assert model != (built_repo / "models/q8.safetensors").read_bytes()  # the experiment changed it
    dvc(["exp", "push", "origin", "coarse-grid"], author, env)

    reader = clone(origin, tmp_path / "reader")  # no artifact, no experiment yet
    dvc(["exp", "pull", "origin", "coarse-grid"], reader, env)
    dvc(["exp", "apply", "coarse-grid"], reader, env)
    assert (reader / "models/q8.safetensors").read_bytes() == model
    for name in [str(paths.metrics_file("q8")), "params.yaml", "dvc.lock"]:
        assert (reader / name).read_text() == (author / name).read_text(), name
    assert dvc(["status"], reader, env).stdout.strip() == "Data and pipelines are up to date."
    run([sys.executable, "-m", "housing_predictor", "selfcheck"], cwd=reader, env=env, timeout=TIMEOUT)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def failing_repos(origin, s3, tmp_path_factory) -> tuple[Path, Path]:
    """Two clones: one with everything pulled (a push has work to send), one with the data pulled
    and the models not (a pull has work to fetch)."""
    root = tmp_path_factory.mktemp("failing")
    env = dvc_env(s3)
    full = clone(origin, root / "full")
    dvc(["pull"], full, env)
    (full / "notes.txt").write_text("uncommitted work\n")  # must survive too
    partial = clone(origin, root / "partial")
    dvc(["pull", "load-data"], partial, env)
    return full, partial


# Each broken remote: how to break it, and the words of DVC's error that name the problem on a push
# and on a pull (a pull asks with HEAD requests, whose error responses have no body, so no code).
FAILURES = {
    "wrong credentials": ("secret", "SignatureDoesNotMatch", "Forbidden"),
    "missing bucket": ("bucket", "NoSuchBucket", "NoSuchBucket"),
    "endpoint down": ("endpoint", "Could not connect to the endpoint URL", "Could not connect to the endpoint URL"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_broken_remote_gives_dvcs_error_and_loses_nothing(failure, failing_repos, s3):
    what, push_words, pull_words = FAILURES[failure]
    env = dvc_env(s3, secret="wrong" if what == "secret" else None, AWS_MAX_ATTEMPTS="1")  # fail fast
    full, partial = failing_repos
    for repo, command, words in [(full, ["push"], push_words), (partial, ["pull"], pull_words)]:
        if what == "bucket":
            dvc(["remote", "modify", "--local", "storage", "url", f"s3://no-such-bucket-{os.getpid()}/dvc"], repo, env)
        elif what == "endpoint":
            dvc(["remote", "modify", "--local", "storage", "endpointurl", f"http://127.0.0.1:{closed_port()}"], repo, env)
        before = snapshot(repo)
        try:
            result = dvc(command, repo, env, check=False)
        finally:
            (repo / ".dvc" / "config.local").unlink(missing_ok=True)  # back to the committed remote
            before.pop(".dvc/config.local", None)
        assert result.returncode != 0, result.stdout + result.stderr
        assert "ERROR" in result.stderr and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert snapshot(repo) == before, f"{failure}: dvc {command[0]} changed local files"
    assert all((full / name).exists() for name in CACHED)
    assert not (partial / "models/q8.safetensors").exists()  # nothing half-written


# --- scripts/ci_remote.sh: what the workflow runs ---------------------------------------------------


@pytest.fixture(scope="module")
def project(built_repo, origin, tmp_path_factory) -> Path:
    """The project as a CI runner checks it out: no remote in .dvc/config (the workflow's variables
    name it), its outputs already pushed by `origin`'s builder."""
    bare = tmp_path_factory.mktemp("project") / "project.git"
    run(["git", "clone", "-q", "--bare", str(built_repo), str(bare)], cwd=bare.parent)
    return bare


def ci_env(s3: S3, **remote: str) -> dict[str, str]:
    """dvc_env without the workflow's settings (these tests may run in a workflow), plus `remote`."""
    env = {name: value for name, value in dvc_env(s3).items() if not name.startswith(("DVC_REMOTE_", "GITHUB_"))}
    return env | remote


def test_ci_remote_repro_restores_from_the_remote_the_variables_name(project, s3, tmp_path):
    repo = clone(project, tmp_path / "clone")
    env = ci_env(s3, DVC_REMOTE_URL=REMOTE_URL, DVC_REMOTE_ENDPOINT=s3.endpoint, DVC_REMOTE_REGION=REGION)
    repro = run(["bash", "scripts/ci_remote.sh", "repro"], cwd=repo, env=env, timeout=TIMEOUT)
    assert "Running stage" not in repro.stdout, repro.stdout
    assert all(f"Pulling data for stage: '{stage}'" in repro.stdout for stage in STAGES), repro.stdout
    assert dvc(["status"], repo, env).stdout.strip() == "Data and pipelines are up to date."
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""  # the remote is in config.local
    assert f"endpointurl = {s3.endpoint}" in (repo / ".dvc" / "config.local").read_text()
    before = sorted(bucket_keys(s3))
    pushed = run(["bash", "scripts/ci_remote.sh", "push"], cwd=repo, env=env, timeout=TIMEOUT)
    # The restores recorded the same runs the builder pushed: DVC sends them again, nothing is new.
    assert "files pushed" in pushed.stdout and sorted(bucket_keys(s3)) == before, pushed.stdout
    assert s3.secret_access_key not in repro.stdout + repro.stderr + pushed.stdout + pushed.stderr


def test_ci_remote_without_a_remote_says_so_and_runs_every_stage(project, s3, tmp_path):
    repo = clone(project, tmp_path / "clone")
    env = ci_env(s3) | {"GITHUB_ACTIONS": "true"}
    repro = run(["bash", "scripts/ci_remote.sh", "repro"], cwd=repo, env=env, timeout=TIMEOUT)
    assert "::notice title=DVC remote::no DVC remote configured" in repro.stdout
    assert all(f"Running stage '{stage}'" in repro.stdout for stage in STAGES), repro.stdout
    assert dvc(["status"], repo, env).stdout.strip() == "Data and pipelines are up to date."
    pushed = run(["bash", "scripts/ci_remote.sh", "push"], cwd=repo, env=env, timeout=TIMEOUT)
    assert "::notice title=DVC remote::no DVC remote configured" in pushed.stdout
    assert "nothing pushed" in pushed.stdout
    assert not (repo / ".dvc" / "config.local").exists()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        # A pull request from a fork: the variables are there, the secrets are empty.
        ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "DVC_REMOTE_URL is set but no S3 credentials are"),
        # A workflow that would push from a pull request by mistake: the script refuses.
        ({"GITHUB_EVENT_NAME": "pull_request"}, "a pull request never pushes to the DVC remote"),
    ],
    ids=["fork without secrets", "pull request"],
)
def test_ci_remote_never_pushes_from_a_pull_request(event, reason, project, s3, tmp_path):
    repo = clone(project, tmp_path / "clone")
    env = ci_env(s3, DVC_REMOTE_URL=REMOTE_URL, DVC_REMOTE_ENDPOINT=s3.endpoint) | event
    pushed = run(["bash", "scripts/ci_remote.sh", "push"], cwd=repo, env=env, timeout=TIMEOUT)
    assert pushed.stdout.startswith(f"notice: {reason}") and pushed.stdout.endswith(": nothing pushed\n")
    assert not (repo / ".dvc" / "config.local").exists()  # the remote was never even set up


@pytest.mark.parametrize("args", [[], ["pull"], ["push", "extra"]])
def test_ci_remote_refuses_an_unknown_command_in_one_line(args):
    result = run(["bash", "scripts/ci_remote.sh", *args], cwd=REPO, check=False, timeout=TIMEOUT)
    assert result.returncode == 2
    assert result.stderr == "usage: bash scripts/ci_remote.sh repro|push\n"
