"""The predictor against hostile input and situations: bad CSV, outputs that must be respected,
broken streams, model files re-signed with a valid checksum but the wrong structure, signals.

Each case runs `python -m housing_predictor` in a fresh folder (a copy of the built models, an input
file, an output folder with one file) and asserts: the exit code, one stderr line naming the
problem, every file of the folder untouched (bytes, mode, type, link target), no temp file left.
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

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
Q8 = ["predict", "--model", "q8"]
PREDICT_Q8 = [sys.executable, "-m", "housing_predictor", "--models-dir", "models", *Q8]  # run in a case's folder
HEADER = ",".join(linear.FEATURES)
ROW = "8.3252,41.0,6.984126984126984,1.0238095238095237,322.0,2.5555555555555554,37.88,-122.23"
OVERFLOWING = ROW.replace("8.3252", "1.7e308").replace("1.0238095238095237", "1.7e308")
VALID = f"{HEADER}\n{ROW}\n{ROW}\n".encode()
Q16_OVER_Q8 = "cp models/q16.safetensors models/q8.safetensors"


def rows(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


# --- model files re-signed with a valid checksum -----------------------------------------------


def resigned(change: Callable[[dict, dict], None]) -> Callable[[Path], None]:
    """Rewrites q8's file after ``change(tensors, header)``, with a valid checksum."""

    def tamper(models: Path) -> None:
        path = models / "q8.safetensors"
        with safe_open(path, framework="numpy") as file:
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118 (not a dict)
            header = json.loads(file.metadata()[modelfile.METADATA_KEY])
        change(tensors, header)
        header["sha256"] = modelfile.content_digest(tensors, header)
        path.write_bytes(save(tensors, metadata={modelfile.METADATA_KEY: json.dumps(header)}))

    return tamper


def tensor(name: str, value: np.ndarray | None) -> Callable[[Path], None]:
    return resigned(lambda tensors, header: tensors.pop(name) if value is None else tensors.update({name: value}))


def metadata(**fields: object) -> Callable[[Path], None]:
    return resigned(lambda tensors, header: header.update(fields))


def int8_codes_as_float(tensors: dict, header: dict) -> None:
    tensors["weight"] = tensors.pop("weight_q")
    del tensors["weight_scale"], tensors["weight_zero_point"]
    header.update(scheme="float", bits=64)


def raw_header(header: bytes) -> Callable[[Path], None]:
    """A file whose JSON header is ``header`` (not a safetensors header at all)."""
    return lambda models: (models / "q8.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)


# --- the cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    message: str  # what the one stderr line must contain
    stdin: bytes | None = None  # fed to stdin; None: the input file in.csv
    input_file: bytes = VALID  # in.csv
    args: list[str] = field(default_factory=lambda: Q8)
    output: str | None = "out/target.csv"  # --output, relative to the case's folder
    redirect: str = ""  # shell redirections of the command
    models: Callable[[Path], None] | None = None  # tampers with the copy of the models
    setup: str = ""  # a shell command run in the case's folder first


CASES = {
    # CSV: one line naming the line and column (each kind of bad CSV: test_predict.py's reader tests)
    "prediction overflows": Case("the prediction of data row 3 overflows float64", input_file=rows(ROW, "", ROW, OVERFLOWING)),
    "error after 100,000 rows": Case("line 100002, column Population", input_file=rows(*[ROW] * 100_000, ROW.replace("322.0", "x"))),
    "bad row on stdin": Case("stdin line 2, column MedInc: 'x' is not a number", stdin=rows(ROW.replace("8.3252", "x"))),
    # outputs that must be respected
    "output is the input": Case("output in.csv is the input file", output="in.csv"),
    "output is a hard link to the input": Case("is the input file", output="out/link.csv", setup="ln in.csv out/link.csv"),
    "output is a symlink to the input": Case("is the input file", output="out/link.csv", setup="ln -s $PWD/in.csv out/link.csv"),
    "stdin is the output file": Case("output out/target.csv is the input file", stdin=b"", redirect="< out/target.csv"),
    "stdout appends to the input": Case("output stdout is the input file", output=None, redirect=">> in.csv"),
    "read-only output": Case("output out/target.csv is read-only", setup="chmod 444 out/target.csv"),
    "output is a directory": Case("output out/taken cannot be written: Is a directory", output="out/taken", setup="mkdir out/taken"),
    "output folder missing": Case("output out/no/such.csv cannot be written: No such file or directory", output="out/no/such.csv"),
    # streams
    "input is a directory": Case("input out cannot be read: Is a directory", args=[*Q8, "--input", "out"]),
    "input missing": Case("input nope.csv cannot be read: No such file or directory", args=[*Q8, "--input", "nope.csv"]),
    "stdin closed": Case("input stdin is closed", stdin=b"", redirect="<&-"),
    "stdout closed": Case("output stdout is closed", output=None, redirect=">&-"),
    "stdout on a full disk": Case("output stdout cannot be written: No space left on device", output=None, redirect=">/dev/full"),
    "output a full device": Case("output /dev/full cannot be written: No space left on device", output="/dev/full"),
    # model files: verified by structure, not only by checksum, one case per check (damaged bytes: test_stages.py)
    "tensor missing": Case("needs tensors weight_q, weight_scale", models=tensor("weight_scale", None)),
    "3 weights": Case("tensor weight_q has shape (3,), expected (8,)", models=tensor("weight_q", np.int8([1, 2, 3]))),
    "NaN scale": Case("tensor weight_scale holds nan, expected finite numbers", models=tensor("weight_scale", np.float32([np.nan]))),
    "zero input scale": Case("input_scale holds 0.0, expected positive numbers", models=tensor("input_scale", np.float32([1, 1, 1, 0, 1, 1, 1, 1]))),
    "codes of the wrong type": Case("tensor weight_q is float32, expected int8 or uint8", models=tensor("weight_q", np.ones(8, np.float32))),
    "scheme float on int8 codes": Case("tensor weight is int8, expected float32 or float64", models=resigned(int8_codes_as_float)),
    "unknown scheme": Case("unknown scheme 'magic'", models=metadata(scheme="magic")),
    "bits not a number": Case("its metadata 'bits' is malformed", models=metadata(bits="eight")),
    "features not names": Case("features must be a list of names, found [5]", models=metadata(features=[5])),
    "a feature twice": Case("features must be named once each", models=metadata(features=["MedInc"] * 8)),
    "unknown features": Case("is invalid: it reads a, b, c, d, e, f, g, h, expected MedInc", models=metadata(features=list("abcdefgh"))),
    "another format": Case("is not a housing-mlops/linear-v2 file (format 'other')", models=metadata(format="other")),
    "header JSON a list": Case("is corrupted (not a readable safetensors file", models=raw_header(b"[1, 2]  ")),
    "header nested 50,000 deep": Case("is corrupted (not a readable safetensors file", models=raw_header(b"[" * 50_000 + b"]" * 50_000)),
    "q16's file over q8's": Case("holds a 16-bit affine model, but q8 is the 8-bit model", setup=Q16_OVER_Q8),
    "q16's file over q8's, --version": Case("but q8 is the 8-bit model", args=["--version"], output=None, setup=Q16_OVER_Q8),
    # usage
    "unknown model": Case("invalid choice: 'q4'", args=["predict", "--model", "q4"]),
    "no command": Case("a command is required", args=[], output=None),
}  # fmt: skip


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: file type, mode, links, and its bytes or link target."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = os.readlink(path)
        else:
            content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
        entries[str(path.relative_to(folder))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_nlink, content)
    return entries


@pytest.fixture
def case_folder(built, tmp_path) -> Path:
    """models/ and metrics/ copied from the build, in.csv, and out/target.csv (mode 0600)."""
    shutil.copytree(built / "models", tmp_path / "models", ignore=shutil.ignore_patterns("*.joblib"))
    shutil.copytree(built / "metrics", tmp_path / "metrics")
    (tmp_path / "in.csv").write_bytes(VALID)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "target.csv").write_bytes(b"keep me\n")
    (tmp_path / "out" / "target.csv").chmod(0o600)
    return tmp_path


def predict(folder: Path, *args: str, **options) -> subprocess.CompletedProcess:
    """The predictor on q8 of ``folder``'s models, run in ``folder``."""
    return subprocess.run([*PREDICT_Q8, *args], cwd=folder, env=ENV, timeout=120, **options)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_case_is_one_line_and_harmless(case_folder, case):
    (case_folder / "in.csv").write_bytes(case.input_file)
    if case.models:
        case.models(case_folder / "models")
    subprocess.run(["sh", "-c", case.setup], cwd=case_folder, check=True)
    before = snapshot(case_folder)
    args = ["--models-dir", "models", "--metrics", "metrics", *case.args]
    if case.args[:1] == ["predict"] and "--input" not in case.args and case.stdin is None:
        args += ["--input", "in.csv"]
    args += ["--output", case.output] if case.output is not None else []
    command = [
        "sh",
        "-c",
        f'exec "$@" {case.redirect}',
        "sh",
        sys.executable,
        "-m",
        "housing_predictor",
        *args,
    ]  # sh: redirections
    result = subprocess.run(command, cwd=case_folder, input=case.stdin, capture_output=True, env=ENV, timeout=120)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert len(stderr.splitlines()) == 1 and stderr.startswith("error: ") and case.message in stderr, stderr
    assert result.stdout == b""  # nothing before the input was validated, and nothing after an error here
    assert snapshot(case_folder) == before  # untouched, and no temp file left


def test_a_reader_that_is_gone_is_one_line(case_folder):
    """stdout a pipe with no reader: the first write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = predict(case_folder, "--input", "in.csv", stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == ["error: output stdout cannot be written: Broken pipe"]


# --- what must work, and keep what is there ------------------------------------------------------


@pytest.fixture(scope="module")
def expected(built) -> bytes:
    """What the predictor writes for VALID."""
    return predict(built, input=VALID, capture_output=True, check=True).stdout


def predict_into(folder: Path, output: str) -> None:
    result = predict(folder, "--output", output, input=VALID, capture_output=True)
    assert result.returncode == 0 and result.stderr == b"", result.stderr


def test_an_existing_file_keeps_its_mode_through_a_symlink(case_folder, expected):
    link, target = case_folder / "out" / "link.csv", case_folder / "out" / "target.csv"
    link.symlink_to("target.csv")
    predict_into(case_folder, "out/link.csv")
    assert link.is_symlink() and os.readlink(link) == "target.csv"
    assert target.read_bytes() == expected and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["link.csv", "target.csv"]  # no temp file left


def test_a_new_file_gets_the_usual_mode(case_folder):
    umask = os.umask(0o022)
    try:
        predict_into(case_folder, "out/new.csv")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((case_folder / "out" / "new.csv").stat().st_mode) == 0o644


def test_hard_links_are_kept(case_folder, expected):
    target, other = case_folder / "out" / "target.csv", case_folder / "other.csv"
    os.link(target, other)
    predict_into(case_folder, "out/target.csv")
    assert other.read_bytes() == target.read_bytes() == expected and os.path.samefile(target, other)
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.csv"]


def test_a_device_and_a_fifo_are_written_not_replaced(case_folder, expected):
    predict_into(case_folder, "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    fifo = case_folder / "out" / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    predict_into(case_folder, str(fifo))
    assert reader.communicate(timeout=60)[0] == expected and stat.S_ISFIFO(fifo.lstat().st_mode)


# --- signals in the middle of a large input -------------------------------------------------------


def default_signals() -> None:
    """In the child before exec: a shell's background job may have inherited SIGINT ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_a_signal_mid_run_removes_the_temp_file(case_folder, signum):
    """Stream rows through a pipe; once the predictor has written part of its temp file (it is mid
    input: we have not finished writing), signal it. It exits 128 + the signal, says so in one
    line, and leaves the folder as it was."""
    before = snapshot(case_folder)
    process = subprocess.Popen(
        [*PREDICT_Q8, "--output", "out/target.csv"], cwd=case_folder, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        env=ENV, preexec_fn=default_signals,
    )  # fmt: skip
    process.stdin.write(HEADER.encode() + b"\n" + (ROW + "\n").encode() * 80_000)  # ~7 MB
    process.stdin.flush()
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".tmp") and p.stat().st_size > 0 for p in (case_folder / "out").iterdir()):
        assert time.monotonic() < deadline, "no temp file written within 60 s"
        time.sleep(0.01)
    process.send_signal(signum)
    try:
        process.stdin.close()
    except BrokenPipeError:
        pass
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 128 + signum
    message = f"error: stopped by {signal.Signals(signum).name}; an output file is replaced only by a complete run"
    assert stderr.splitlines() == [message]
    assert snapshot(case_folder) == before
