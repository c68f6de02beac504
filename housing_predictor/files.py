"""Writing files so that a reader never sees half of one: the stages' outputs and the predictor's.

``replacing`` is the one way the project replaces a file: a temp file beside it, renamed over it
only when the ``with`` block succeeds. A failure, a crash or a stop signal (``errors.Stopped``)
leaves what was there, and no temp file.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from housing_predictor.errors import PipelineError, signals_held


@contextmanager
def replacing(path: Path, like: os.stat_result | None = None, name: str | None = None) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block succeeds; ``name`` is what messages call
    it (default: its path).

    The new file gets the mode a new file gets (the umask applies: ``open`` creates it 0o666 less
    the umask), or with ``like`` (the stat of the file it replaces) that file's mode and, where we
    may, its owner. A file with other hard links is rewritten in place instead, so that every link
    sees the new contents (signals wait meanwhile: it must not be cut in two).
    """
    path = Path(path)
    name = name or str(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")  # named before it exists: always removable
    try:
        try:
            file = open(temp, "xb")  # noqa: SIM115 (closed below, before the rename)
        except FileExistsError:  # not ours: never remove it
            temp = None
            raise PipelineError(f"{name} cannot be written: a temp file of that name exists") from None
        except OSError as error:
            raise PipelineError(f"{name} cannot be written: {error.strerror}") from None
        with file:
            yield file
        if like is not None and like.st_nlink > 1:
            with signals_held(), open(path, "r+b") as target, open(temp, "rb") as written:
                target.truncate(0)
                while chunk := written.read(1 << 20):
                    target.write(chunk)
            return
        if like is not None:
            os.chmod(temp, stat.S_IMODE(like.st_mode))
            if (like.st_uid, like.st_gid) != (os.getuid(), os.getgid()):
                try:
                    os.chown(temp, like.st_uid, like.st_gid)
                except OSError:
                    pass  # only root may give a file away; the mode still protects it
        os.replace(temp, path)
    except OSError as error:
        raise PipelineError(f"{name} cannot be written: {error.strerror or error}") from None
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (creating its folder) through ``replacing``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as file:
        file.write(data)


def write_json(path: Path, document: dict) -> None:
    """Indented JSON, keys in the order given, trailing newline: diffs cleanly in git.

    NaN and infinity are refused (JSON has no such numbers; json.dumps would write bare `NaN`)."""
    try:
        text = json.dumps(document, indent=2, allow_nan=False)
    except ValueError:
        raise PipelineError(f"{path}: not written, {', '.join(_non_finite_keys(document))} is not a finite number") from None
    write_atomic(path, (text + "\n").encode())


def _non_finite_keys(node, prefix: str = "") -> list[str]:
    """The dotted keys of the NaN or infinite floats in a JSON-like document."""
    if isinstance(node, float):
        return [] if math.isfinite(node) else [prefix or "the document"]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return [key for name, child in items for key in _non_finite_keys(child, f"{prefix}.{name}" if prefix else str(name))]


def read_json(path: Path, what: str) -> dict:
    """The JSON document at ``path``; missing or unreadable is one line naming ``what`` it is."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"{what} {path} is missing: run `dvc repro`") from None
    except (OSError, ValueError) as error:
        raise PipelineError(f"{what} {path} is unreadable or not JSON: {error}") from None
