"""The predictor against hostile input and situations: bad CSV, outputs that must be respected,
broken streams, model files re-signed with a valid checksum but the wrong structure, signals.

Every case runs `python -m housing_predictor` in a fresh folder holding a copy of the built models,
an input file and an output folder with one file in it, and asserts: the exit code, exactly one
stderr line naming the problem (no traceback), every file of both folders untouched (bytes, mode,
file type, link target), and no temp file left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save

from housing_predictor import linear, modelfile

from conftest import REPO

FEATURES = list(linear.FEATURES)
# The predictor on a case folder's models (run with cwd = the folder).
PREDICT_Q8 = [sys.executable, "-m", "housing_predictor", "--models-dir", "models", "predict", "--model", "q8"]
HEADER = ",".join(FEATURES)
ROW = "8.3252,41.0,6.984126984126984,1.0238095238095237,322.0,2.5555555555555554,37.88,-122.23"
VALID = f"{HEADER}\n{ROW}\n{ROW}\n".encode()
KEPT = b"keep me\n"


# --- model files re-signed with a valid checksum -----------------------------------------------


def resign(path: Path, change: Callable[[dict, dict], None]) -> None:
    """Rewrite the model file at ``path`` after ``change(tensors, header)``, with a valid checksum."""
    with safe_open(path, framework="numpy") as file:
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118 (not a dict)
        header = json.loads(file.metadata()[modelfile.METADATA_KEY])
    change(tensors, header)
    header["sha256"] = modelfile.content_digest(tensors, header)
    path.write_bytes(save(tensors, metadata={modelfile.METADATA_KEY: json.dumps(header)}))


def tensor(name: str, value: np.ndarray | None) -> Callable[[Path], None]:
    def change(tensors: dict, metadata: dict) -> None:
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value

    return lambda models: resign(models / "q8.safetensors", change)


def metadata(**fields: object) -> Callable[[Path], None]:
    return lambda models: resign(models / "q8.safetensors", lambda tensors, meta: meta.update(fields))


def raw_header(header: bytes) -> Callable[[Path], None]:
    """A file whose JSON header is ``header`` (not a safetensors header at all)."""
    return lambda models: (models / "q8.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)


def int8_codes_as_float(models: Path) -> None:
    def change(tensors: dict, meta: dict) -> None:
        tensors["weight"] = tensors.pop("weight_q")
        del tensors["weight_scale"], tensors["weight_zero_point"]
        meta.update(scheme="float", bits=64)

    resign(models / "q8.safetensors", change)


def scale_of_input(index: int, value: float) -> Callable[[Path], None]:
    def change(tensors: dict, meta: dict) -> None:
        tensors["input_scale"] = tensors["input_scale"].copy()
        tensors["input_scale"][index] = value

    return lambda models: resign(models / "q8.safetensors", change)


def copy_q16_over_q8(models: Path) -> None:
    shutil.copy(models / "q16.safetensors", models / "q8.safetensors")


# --- the cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    message: str  # what the one stderr line must contain
    stdin: bytes | None = None  # fed to stdin; None: the input file in.csv
    input_file: bytes = VALID  # in.csv
    args: list[str] = field(default_factory=lambda: ["predict", "--model", "q8"])
    output: str | None = "out/target.csv"  # --output, relative to the case's folder
    redirect: str = ""  # shell redirections of the command
    models: Callable[[Path], None] | None = None  # tampers with the copy of the models
    setup: Callable[[Path], None] | None = None  # anything else in the case's folder
    exit_code: int = 2


def rows(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


def hard_link_to_input(folder: Path) -> None:
    os.link(folder / "in.csv", folder / "out" / "link.csv")


def symlink_to_input(folder: Path) -> None:
    (folder / "out" / "link.csv").symlink_to(folder / "in.csv")


def read_only_target(folder: Path) -> None:
    (folder / "out" / "target.csv").chmod(0o444)


def directory_target(folder: Path) -> None:
    (folder / "out" / "taken").mkdir()


CASES = {
    # CSV: one line naming the line and column (each kind of bad CSV: test_predict.py's reader tests)
    "prediction overflows": Case(
        "the prediction of data row 3 overflows float64",
        input_file=rows(ROW, "", ROW, ROW.replace("8.3252", "1.7e308").replace("1.0238095238095237", "1.7e308")),
    ),
    "error after 100,000 rows": Case(
        "line 100002, column Population", input_file=rows(*[ROW] * 100_000, ROW.replace("322.0", "x"))
    ),
    "bad row on stdin": Case("stdin line 2, column MedInc: 'x' is not a number", stdin=rows(ROW.replace("8.3252", "x"))),
    # outputs that must be respected
    "output is the input": Case("output in.csv is the input file", output="in.csv"),
    "output is a hard link to the input": Case("is the input file", output="out/link.csv", setup=hard_link_to_input),
    "output is a symlink to the input": Case("is the input file", output="out/link.csv", setup=symlink_to_input),
    "stdin is the output file": Case("output out/target.csv is the input file", stdin=b"", redirect="< out/target.csv"),
    "stdout appends to the input": Case("output stdout is the input file", output=None, redirect=">> in.csv"),
    "read-only output": Case("output out/target.csv is read-only", setup=read_only_target),
    "output is a directory": Case(
        "output out/taken cannot be written: Is a directory", output="out/taken", setup=directory_target
    ),
    "output folder missing": Case(
        "output out/no/such.csv cannot be written: No such file or directory", output="out/no/such.csv"
    ),
    # streams
    "input is a directory": Case("input out cannot be read: Is a directory", args=["predict", "--model", "q8", "--input", "out"]),
    "input missing": Case(
        "input nope.csv cannot be read: No such file or directory", args=["predict", "--model", "q8", "--input", "nope.csv"]
    ),
    "stdin closed": Case("input stdin is closed", stdin=b"", redirect="<&-"),
    "stdout closed": Case("output stdout is closed", output=None, redirect=">&-"),
    "stdout on a full disk": Case("output stdout cannot be written: No space left on device", output=None, redirect=">/dev/full"),
    "output a full device": Case("output /dev/full cannot be written: No space left on device", output="/dev/full"),
    # model files: verified by structure, not only by checksum, one case per check (a damaged or missing
    # file: test_stages.py)
    "tensor missing": Case("needs tensors weight_q, weight_scale", models=tensor("weight_scale", None)),
    "3 weights": Case("tensor weight_q has shape (3,), expected (8,)", models=tensor("weight_q", np.array([1, 2, 3], np.int8))),
    "NaN scale": Case(
        "tensor weight_scale holds nan, expected finite numbers", models=tensor("weight_scale", np.array([np.nan], np.float32))
    ),
    "zero input scale": Case("tensor input_scale holds 0.0, expected positive numbers", models=scale_of_input(3, 0.0)),
    "codes of the wrong type": Case(
        "tensor weight_q is float32, expected int8 or uint8", models=tensor("weight_q", np.ones(8, np.float32))
    ),
    "scheme float on int8 codes": Case("tensor weight is int8, expected float32 or float64", models=int8_codes_as_float),
    "unknown scheme": Case("unknown scheme 'magic'", models=metadata(scheme="magic")),
    "bits not a number": Case("its metadata 'bits' is malformed", models=metadata(bits="eight")),
    "features not names": Case("features must be a list of names, found [5]", models=metadata(features=[5])),
    "a feature twice": Case("features must be named once each", models=metadata(features=["MedInc"] * 8)),
    "unknown features": Case(
        "is invalid: it reads a, b, c, d, e, f, g, h, expected MedInc", models=metadata(features=list("abcdefgh"))
    ),
    "another format": Case("is not a housing-mlops/linear-v2 file (format 'other')", models=metadata(format="other")),
    "header JSON a list": Case("is corrupted (not a readable safetensors file", models=raw_header(b"[1, 2]  ")),
    "header nested 50,000 deep": Case(
        "is corrupted (not a readable safetensors file", models=raw_header(b"[" * 50_000 + b"]" * 50_000)
    ),
    "q16's file over q8's": Case("holds a 16-bit affine model, but q8 is the 8-bit model", models=copy_q16_over_q8),
    "q16's file over q8's, --version": Case(
        "but q8 is the 8-bit model", args=["--version"], output=None, models=copy_q16_over_q8
    ),
    # usage
    "unknown model": Case("invalid choice: 'q4'", args=["predict", "--model", "q4"]),
    "no command": Case("a command is required", args=[], output=None),
}


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: file type and mode, and its bytes or link target."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = path.read_bytes()
        else:
            content = None
        entries[str(path.relative_to(folder))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_nlink, content)
    return entries


@pytest.fixture
def case_folder(built, tmp_path) -> Path:
    """models/ and metrics/ copied from the build, in.csv, and out/target.csv (mode 0600)."""
    shutil.copytree(built / "models", tmp_path / "models", ignore=shutil.ignore_patterns("*.joblib"))
    shutil.copytree(built / "metrics", tmp_path / "metrics")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "target.csv").write_bytes(KEPT)
    (tmp_path / "out" / "target.csv").chmod(0o600)
    return tmp_path


def command(case: Case) -> list[str]:
    """The predictor under `sh`, so that the case can close or redirect its streams."""
    args = ["--models-dir", "models", "--metrics", "metrics", *case.args]
    if case.args[:1] == ["predict"] and "--input" not in case.args and case.stdin is None:
        args += ["--input", "in.csv"]
    if case.output is not None:
        args += ["--output", case.output]
    return ["sh", "-c", f'exec "$@" {case.redirect}', "sh", sys.executable, "-m", "housing_predictor", *args]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_case_is_one_line_and_harmless(case_folder, case):
    (case_folder / "in.csv").write_bytes(case.input_file)
    if case.models:
        case.models(case_folder / "models")
    if case.setup:
        case.setup(case_folder)
    before = snapshot(case_folder)
    result = subprocess.run(
        command(case),
        cwd=case_folder,
        input=case.stdin,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == case.exit_code, stderr
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("error: ") and case.message in stderr, stderr
    assert result.stdout == b""  # nothing before the input was validated, and nothing after an error here
    assert snapshot(case_folder) == before  # untouched, and no temp file left


def test_a_reader_that_is_gone_is_one_line(case_folder):
    """stdout a pipe with no reader: the first write fails with EPIPE."""
    (case_folder / "in.csv").write_bytes(VALID)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*PREDICT_Q8, "--input", "in.csv"],
            cwd=case_folder,
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == ["error: output stdout cannot be written: Broken pipe"]


# --- what must work, and keep what is there ------------------------------------------------------


def predict_into(folder: Path, output: str, stdin: bytes = VALID) -> bytes:
    result = subprocess.run(
        [*PREDICT_Q8, "--output", output],
        cwd=folder,
        input=stdin,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    return result.stdout


def expected_output(folder: Path) -> bytes:
    result = subprocess.run(
        PREDICT_Q8,
        cwd=folder,
        input=VALID,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    return result.stdout


def test_an_existing_file_keeps_its_mode(case_folder):
    target = case_folder / "out" / "target.csv"
    predict_into(case_folder, "out/target.csv")
    assert target.read_bytes() == expected_output(case_folder)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.csv"]


def test_a_new_file_gets_the_usual_mode(case_folder):
    umask = os.umask(0o022)
    try:
        predict_into(case_folder, "out/new.csv")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((case_folder / "out" / "new.csv").stat().st_mode) == 0o644


def test_a_symlink_is_followed(case_folder):
    link = case_folder / "out" / "link.csv"
    link.symlink_to("target.csv")
    predict_into(case_folder, "out/link.csv")
    assert link.is_symlink() and os.readlink(link) == "target.csv"
    assert (case_folder / "out" / "target.csv").read_bytes() == expected_output(case_folder)
    assert stat.S_IMODE((case_folder / "out" / "target.csv").stat().st_mode) == 0o600


def test_hard_links_are_kept(case_folder):
    target, other = case_folder / "out" / "target.csv", case_folder / "other.csv"
    os.link(target, other)
    predict_into(case_folder, "out/target.csv")
    assert other.read_bytes() == target.read_bytes() == expected_output(case_folder)
    assert os.path.samefile(target, other)
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.csv"]


def test_a_device_is_written_not_replaced(case_folder):
    predict_into(case_folder, "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_is_written_directly(case_folder):
    fifo = case_folder / "out" / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    predict_into(case_folder, str(fifo))
    assert reader.communicate(timeout=60)[0] == expected_output(case_folder)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


# --- signals in the middle of a large input -------------------------------------------------------


def default_signals() -> None:
    """In the child before exec: a shell's background job may have inherited SIGINT ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_a_signal_mid_run_removes_the_temp_file(case_folder, signum):
    """Stream rows through a pipe; once the predictor has written part of its temp file (it is mid
    input: we have not finished writing), signal it. It exits 128 + the signal, says so in one
    line, and leaves the folder as it was."""
    before = snapshot(case_folder)
    process = subprocess.Popen(
        [*PREDICT_Q8, "--output", "out/target.csv"],
        cwd=case_folder,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=default_signals,
    )
    chunk = (ROW + "\n").encode() * 20_000  # ~1.7 MB
    process.stdin.write(HEADER.encode() + b"\n")
    for _ in range(4):
        process.stdin.write(chunk)
    process.stdin.flush()

    def temp_file_written() -> bool:
        return any(p.name.endswith(".tmp") and p.stat().st_size > 0 for p in (case_folder / "out").iterdir())

    wait_for(temp_file_written)
    process.send_signal(signum)
    try:
        process.stdin.close()
    except BrokenPipeError:
        pass
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 128 + signum
    assert stderr.splitlines() == [
        f"error: stopped by {signal.Signals(signum).name}; an output file is replaced only by a complete run"
    ]
    assert snapshot(case_folder) == before
