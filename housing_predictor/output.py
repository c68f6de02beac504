"""Where predictions go, respecting what is there, as `cp` or `sort -o` would.

- stdout: written as it comes (a pipe, a file, /dev/full...); a write error is one line.
- a regular file: written to a temp file beside it and put in place only when the run succeeds,
  with the old file's mode (and owner, where we may); a file with other hard links is rewritten in
  place at the end instead, so the links keep seeing it. A read-only file is refused.
- a symlink: followed, and its target written as above.
- a device, FIFO or socket (/dev/null, a named pipe): written directly, never replaced.
- the input file itself (same inode): refused before anything is read.

Temp files never outlive the process: SIGTERM, SIGHUP and SIGINT raise ``Stopped`` (see
``stop_on_signals``), which unwinds through the cleanup here.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from housing_predictor.errors import PipelineError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

Writer = Callable[[bytes], None]


class Stopped(BaseException):
    """A stop signal arrived (a BaseException, like KeyboardInterrupt: nothing should swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention for "killed by this signal"

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}; an output file is replaced only by a complete run"


def stop_on_signals() -> None:
    """Turn SIGTERM (`docker stop`), SIGHUP and SIGINT (Ctrl-C) into ``Stopped``, so that cleanup
    runs and the command ends with one line instead of a traceback. A signal already ignored when
    we start (`nohup` ignores SIGHUP, a shell's background job SIGINT) stays ignored."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _stop)


def _stop(signum: int, frame: object) -> None:
    for other in STOP_SIGNALS:  # a second signal must not interrupt the cleanup
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


@contextmanager
def signals_held() -> Iterator[None]:
    """Stop signals wait until the block ends: for steps that must not be cut in two (a temp file
    created but not yet known to the cleanup, a file being rewritten in place)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def same_file(a: os.stat_result | None, b: os.stat_result | None) -> bool:
    return a is not None and b is not None and stat.S_ISREG(a.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _write_all(fd: int, data: bytes, name: str) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as error:
        raise PipelineError(f"output {name} cannot be written: {error.strerror or error}") from None


@contextmanager
def open_output(path: str | None, input_stat: os.stat_result | None) -> Iterator[Writer]:
    """A function writing bytes to ``path`` (stdout for None or '-'), as the module docstring says.
    ``input_stat``: the input's ``os.fstat``, to refuse writing over it."""
    if path in (None, "-"):
        yield stdout_writer(input_stat)
        return
    target = Path(os.path.realpath(path))  # a symlink's target: we write it, the link stays
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as error:
        raise PipelineError(f"output {path} cannot be written: {error.strerror}") from None
    if same_file(existing, input_stat):
        raise PipelineError(f"output {path} is the input file: write the predictions somewhere else")
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise PipelineError(f"output {path} cannot be written: Is a directory")
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with _opened(target, path, os.O_WRONLY) as fd:
            yield lambda data: _write_all(fd, data, path)
        return
    # (root may write any file, so the mode counts too: a file nobody may write is meant to stay)
    if existing is not None and not (os.access(target, os.W_OK) and existing.st_mode & 0o222):
        raise PipelineError(f"output {path} is read-only: it was left as it was")
    with _replacing(target, path, existing) as write:
        yield write


def stdout_writer(input_stat: os.stat_result | None = None) -> Writer:
    """Writes to stdout, unbuffered (so nothing is left for Python to flush, and fail on, at exit)."""
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        raise PipelineError("output stdout is closed: redirect it, or use --output FILE")
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # replaced by an in-memory stream (redirect_stdout)
        return lambda data: sys.stdout.write(data.decode())
    sys.stdout.flush()  # what was printed before goes first
    if same_file(os.fstat(fd), input_stat):
        raise PipelineError("output stdout is the input file: write the predictions somewhere else")
    return lambda data: _write_all(fd, data, "stdout")


@contextmanager
def _opened(target: Path, shown: str, flags: int) -> Iterator[int]:
    try:
        fd = os.open(target, flags | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise PipelineError(f"output {shown} cannot be written: {error.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def _replacing(target: Path, shown: str, existing: os.stat_result | None) -> Iterator[Writer]:
    """Write a temp file beside ``target``; on success give it ``existing``'s mode and owner and
    rename it over ``target`` (or copy it into ``target`` when that has other hard links)."""
    import tempfile  # only a run writing to a file needs it

    temp = None
    try:
        with signals_held():  # (a signal held here arrives when the block ends: inside this try)
            try:
                fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            except OSError as error:
                raise PipelineError(f"output {shown} cannot be written: {error.strerror}") from None
            temp = Path(temp_name)
        try:
            yield lambda data: _write_all(fd, data, shown)
        finally:
            os.close(fd)
        with signals_held():
            _put_in_place(temp, target, shown, existing)
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


def _put_in_place(temp: Path, target: Path, shown: str, existing: os.stat_result | None) -> None:
    try:
        if existing is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)  # mkstemp's 0600 is not what a new file gets
        elif existing.st_nlink > 1:
            with open(temp, "rb") as source, open(target, "r+b") as out:
                out.truncate(0)
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            return
        else:
            os.chmod(temp, stat.S_IMODE(existing.st_mode))
            if (existing.st_uid, existing.st_gid) != (os.getuid(), os.getgid()):
                try:
                    os.chown(temp, existing.st_uid, existing.st_gid)
                except OSError:
                    pass  # only root may give a file away; the mode still protects it
        os.replace(temp, target)
    except OSError as error:
        raise PipelineError(f"output {shown} cannot be written: {error.strerror or error}") from None
