"""Where predictions go, respecting what is there, as `cp` or `sort -o` would.

- stdout: written as it comes (a pipe, a file, /dev/full...); a write error is one line.
- a regular file: replaced only when the run succeeds (``files.replacing``: a temp file beside
  it, the old file's mode and owner; a file with other hard links rewritten in place, so the links
  keep seeing it). A read-only file is refused.
- a symlink: followed, and its target written as above.
- a device, FIFO or socket (/dev/null, a named pipe): written directly, never replaced.
- the input file itself (same inode): refused before anything is read.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from housing_predictor.errors import PipelineError
from housing_predictor.files import replacing

Writer = Callable[[bytes], None]


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
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as error:
            raise PipelineError(f"output {path} cannot be written: {error.strerror}") from None
        try:
            yield lambda data: _write_all(fd, data, path)
        finally:
            os.close(fd)
        return
    # (root may write any file, so the mode counts too: a file nobody may write is meant to stay)
    if existing is not None and not (os.access(target, os.W_OK) and existing.st_mode & 0o222):
        raise PipelineError(f"output {path} is read-only: it was left as it was")
    with replacing(target, like=existing, name=f"output {path}") as file:
        yield lambda data: _write_all(file.fileno(), data, path)


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
