"""CSV of numbers in, in blocks: numpy's C reader (``np.loadtxt``) does the parsing.

What we add around it is what a command line needs: line endings of every kind (LF, CRLF, CR)
turned into LF, blocks of whole lines so that memory stays flat, a header naming the columns in any
order, and, when numpy refuses a block, one message naming the line (the header is line 1) and the
column of the first problem, found by re-reading that block with the csv module.

Accepted: header names quoted or not, a UTF-8 BOM, quoted fields, surrounding spaces, scientific
notation, blank lines anywhere, no final newline. Refused: anything that is not a finite number,
ragged rows, unknown, missing or repeated columns, input that is not UTF-8 text.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from housing_predictor.errors import PipelineError

BLOCK_BYTES = 1 << 18  # read per step: numpy's per-call cost vanishes, memory stays flat (~40 MB peak)
MAX_LINE_BYTES = 1 << 20  # a "line" longer than this is not a row of numbers: refuse before it fills memory
QUOTE = '"'


def iter_blocks(stream: BinaryIO, source: str, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, bytes]]:
    """``(number of the block's first line, block)``: whole lines, each ending in '\\n' (CRLF and CR
    turned into LF), counting from line 1."""
    line_number = 1
    pending = b""
    while True:
        data = _read(stream, block_bytes, source)
        if not data:
            if pending:
                block = _normalised(pending)
                yield line_number, block if block.endswith(b"\n") else block + b"\n"
            return
        data = pending + data
        # A final '\r' may be the first half of '\r\n': keep it for the next read.
        searched = data[:-1] if data.endswith(b"\r") else data
        cut = max(searched.rfind(b"\n"), searched.rfind(b"\r")) + 1
        if cut == 0:
            if len(data) > MAX_LINE_BYTES:
                raise PipelineError(f"{source} line {line_number} is longer than {MAX_LINE_BYTES} bytes: not CSV text")
            pending = data
            continue
        block, pending = _normalised(data[:cut]), data[cut:]
        yield line_number, block
        line_number += block.count(b"\n")


def _read(stream: BinaryIO, size: int, source: str) -> bytes:
    try:
        return stream.read(size)
    except OSError as error:
        raise PipelineError(f"{source} cannot be read: {error.strerror or error}") from None


def _normalised(block: bytes) -> bytes:
    if b"\r" not in block:
        return block
    return block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def parse_header(line: bytes, source: str, line_number: int = 1) -> list[str]:
    """Column names (UTF-8, optional BOM, quoted or not, surrounding spaces ignored)."""
    import csv

    text = _text(line, source, line_number, "header")
    return [name.strip() for name in next(csv.reader([text.removeprefix("\ufeff")], quotechar=QUOTE))]


def column_order(header: list[str], columns: list[str], source: str) -> np.ndarray:
    """Indices that take the file's columns to ``columns``' order; names missing, unknown or
    repeated columns otherwise."""
    repeated = sorted({name for name in header if header.count(name) > 1})
    missing = [name for name in columns if name not in header]
    unknown = [name for name in header if name not in columns]
    problems = []
    if missing:
        problems.append(f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column{'s' * (len(unknown) > 1)} {', '.join(repr(n[:40]) for n in unknown[:10])}")
    if repeated:
        problems.append(f"repeated column{'s' * (len(repeated) > 1)} {', '.join(repeated)}")
    if problems:
        raise PipelineError(f"{source} header: {'; '.join(problems)} (expected the columns {', '.join(columns)}, in any order)")
    return np.array([header.index(name) for name in columns])


def read_table(
    stream: BinaryIO, columns: list[str], source: str, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[int, np.ndarray]]:
    """``(number of the block's first line, X)`` per block of rows, X (n, len(columns)) float64 in
    ``columns``' order. The header (the first non-blank line) is validated before anything is
    yielded; input without data rows is refused."""
    header = None
    any_rows = False
    for first_line, block in iter_blocks(stream, source, block_bytes):
        if header is None:
            first_line, block = _skip_blank_lines(first_line, block)
            if not block:
                continue
            line, _, block = block.partition(b"\n")
            header = parse_header(line, source, first_line)
            order = column_order(header, columns, source)
            first_line += 1
        X = parse_rows(block, first_line, header, source)
        if len(X):
            any_rows = True
            yield first_line, X[:, order]
    if header is None:
        raise PipelineError(f"{source} is empty: expected a CSV header line naming the columns")
    if not any_rows:
        raise PipelineError(f"{source} has a header but no data rows")


def _skip_blank_lines(first_line: int, block: bytes) -> tuple[int, bytes]:
    stripped = block.lstrip(b" \t\n")
    start = len(block) - len(stripped)
    start = block.rfind(b"\n", 0, start) + 1  # back to the start of the first non-blank line
    return first_line + block.count(b"\n", 0, start), block[start:]


def parse_rows(block: bytes, first_line: int, header: list[str], source: str) -> np.ndarray:
    """The block's rows as (n, len(header)) float64, columns in file order; blank lines skipped.

    numpy reads the block; if it refuses it, or reads NaN or infinity, ``_raise_first_problem`` re-reads
    the block line by line to say where. Lines of spaces only (which numpy takes for one empty
    field) are dropped and the block read again."""
    if not block.strip():
        return np.empty((0, len(header)))
    text = _text(block, source, first_line, "data")
    try:
        X = _loadtxt(text)
    except ValueError as error:
        _raise_first_problem(text, first_line, header, source)
        try:
            X = _loadtxt("\n".join(line for line in text.split("\n") if line.strip()))
        except ValueError:
            raise PipelineError(f"{source} {_lines(first_line, text)}: {error}") from None
    if X.shape[1] != len(header) or not np.isfinite(X).all():
        _raise_first_problem(text, first_line, header, source)
        raise PipelineError(f"{source} {_lines(first_line, text)} cannot be read as numbers")
    return X


def _lines(first_line: int, text: str) -> str:
    """'lines A-B': the lines of a block, for the (unexpected) case where numpy and the csv module
    disagree about which of them is wrong."""
    return f"lines {first_line}-{first_line + text.count(chr(10)) - 1}"


def _loadtxt(text: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": our caller decides
        return np.loadtxt(io.StringIO(text), delimiter=",", quotechar=QUOTE, comments=None, dtype=np.float64, ndmin=2)


def _text(data: bytes, source: str, first_line: int, what: str) -> str:
    """``data`` as text; binary input (not UTF-8, or NUL bytes) refused naming its first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad_at = error.start
    else:
        bad_at = text.find("\0")
        if bad_at < 0:
            return text
        bad_at = len(text[:bad_at].encode())
    line = first_line + data.count(b"\n", 0, bad_at)
    where = "line 1 (the header)" if what == "header" and line == 1 else f"line {line}"
    raise PipelineError(f"{source} {where} is not UTF-8 text: binary input, or another encoding")


def _raise_first_problem(text: str, first_line: int, header: list[str], source: str) -> None:
    """Raise the error of the first bad line of ``text``: ragged, or a field that is not a finite
    number. Returns if every line is fine (then only lines of spaces upset numpy)."""
    import csv

    for offset, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        fields = next(csv.reader([line], quotechar=QUOTE))
        where = f"{source} line {first_line + offset}"
        if len(fields) != len(header):
            raise PipelineError(f"{where} has {len(fields)} fields, expected {len(header)}")
        for name, field in zip(header, fields, strict=True):
            check_number(field, f"{where}, column {name}")


def check_number(field: str, where: str) -> float:
    """One field as a finite float, or an error naming it (what numpy's reader accepts)."""
    text = field.strip()
    shown = repr(text if len(text) <= 40 else text[:37] + "...")
    if not text:
        raise PipelineError(f"{where} is empty, expected a number")
    try:
        if "_" in text:  # float() accepts '1_000'; numpy's reader and CSV do not
            raise ValueError
        value = float(text)
    except ValueError:
        raise PipelineError(f"{where}: {shown} is not a number") from None
    if not math.isfinite(value):
        raise PipelineError(f"{where}: {shown} is not a finite number (NaN and infinity are refused)")
    return value
