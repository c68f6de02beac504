"""CSV of numbers in, in blocks of whole lines: Python's text layer decodes, numpy's C reader
(``np.loadtxt``) parses.

``io.TextIOWrapper(encoding="utf-8-sig", newline=None)`` takes the BOM off and turns every line
ending (LF, CRLF, CR) into LF; bytes that are not UTF-8 come through as lone surrogates
(``surrogateescape``), so that the line holding them can be named. Blocks of whole lines are read
``BLOCK_CHARS`` at a time: memory stays flat, and the line numbers of a block are known. (Not
``loadtxt(max_rows=)`` on the stream: it does not count blank lines, and after a refused row the
stream's position is lost, so a message could not name the line.) When numpy refuses a block, or
reads NaN or infinity, the block is re-read line by line with the csv module to name the line
(the header is line 1) and column of the first problem.

Accepted: header names quoted or not, a UTF-8 BOM, quoted fields, surrounding spaces, scientific
notation, blank lines anywhere, no final newline. Refused: anything that is not a finite number,
ragged rows, unknown, missing or repeated columns, input that is not UTF-8 text.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from housing_predictor.errors import PipelineError

BLOCK_CHARS = 1 << 18  # read per step: numpy's per-call cost vanishes, memory stays flat
MAX_LINE_CHARS = 1 << 20  # a "line" longer than this is not a row of numbers: refuse before it fills memory
QUOTE = '"'
NOT_TEXT = re.compile("[\0\udc80-\udcff]")  # NUL, or a byte that is not UTF-8 (surrogateescape)


def read_table(stream: BinaryIO, columns: list[str], source: str, block_chars: int = BLOCK_CHARS) -> Iterator[np.ndarray]:
    """``X`` (n, len(columns)) float64 in ``columns``' order, per block of rows. The header (the
    first non-blank line) is validated before anything is yielded; input without rows is refused."""
    header = order = None
    any_rows = False
    for first_line, block in _blocks(stream, source, block_chars):
        if header is None:
            blank = len(block) - len(block.lstrip(" \t\n"))
            if blank == len(block):
                continue
            start = block.rfind("\n", 0, blank) + 1  # where the first non-blank line starts
            first_line += block.count("\n", 0, start) + 1  # the blank lines and the header
            line, _, block = block[start:].partition("\n")
            header = parse_header(line)
            order = column_order(header, columns, source)
        X = parse_rows(block, first_line, header, source)
        if len(X):
            any_rows = True
            yield X[:, order]
    if header is None:
        raise PipelineError(f"{source} is empty: expected a CSV header line naming the columns")
    if not any_rows:
        raise PipelineError(f"{source} has a header but no data rows")


def _blocks(stream: BinaryIO, source: str, block_chars: int) -> Iterator[tuple[int, str]]:
    """``(number of the block's first line, the block)``: whole lines joined by '\\n' (LF, CRLF
    and CR all read as LF), counting from line 1; text that is not UTF-8 is refused naming its line."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline=None)
    try:
        line_number, pending = 1, ""
        while data := _read(text, block_chars, source):
            data = pending + data
            # (the regex is slow on large text: CSV of numbers is ASCII, which str checks at C speed)
            if ("\0" in data or not data.isascii()) and (bad := NOT_TEXT.search(data)):
                where = line_number + data.count("\n", 0, bad.start())
                raise PipelineError(
                    f"{source} {'line 1 (the header)' if where == 1 else f'line {where}'} is not UTF-8 text: binary input, or another encoding"
                )
            cut = data.rfind("\n")
            if cut < 0:
                if len(data) > MAX_LINE_CHARS:
                    raise PipelineError(f"{source} line {line_number} is longer than {MAX_LINE_CHARS} characters: not CSV text")
                pending = data
                continue
            block, pending = data[:cut], data[cut + 1 :]
            yield line_number, block
            line_number += block.count("\n") + 1
        if pending:
            yield line_number, pending
    finally:
        with contextlib.suppress(ValueError):  # (already closed by the caller)
            text.detach()  # the caller's stream stays open (the wrapper would close it)


def _read(text: io.TextIOWrapper, size: int, source: str) -> str:
    try:
        return text.read(size)
    except OSError as error:
        raise PipelineError(f"{source} cannot be read: {error.strerror or error}") from None


def parse_header(line: str) -> list[str]:
    """Column names (quoted or not, surrounding spaces ignored)."""
    return [name.strip() for name in next(csv.reader([line], quotechar=QUOTE))]


def column_order(header: list[str], columns: list[str], source: str) -> np.ndarray:
    """Indices that take the file's columns to ``columns``' order; names missing, unknown or
    repeated columns otherwise (in time linear in the header's length)."""
    counts = Counter(header)
    wanted = set(columns)
    missing = [name for name in columns if name not in counts]
    unknown = [name for name in counts if name not in wanted]
    repeated = sorted(name for name, count in counts.items() if count > 1)
    problems = []
    if missing:
        problems.append(f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column{'s' * (len(unknown) > 1)} {', '.join(repr(n[:40]) for n in unknown[:10])}")
    if repeated:
        problems.append(f"repeated column{'s' * (len(repeated) > 1)} {', '.join(repeated[:10])}")
    if problems:
        raise PipelineError(f"{source} header: {'; '.join(problems)} (expected the columns {', '.join(columns)}, in any order)")
    position = {name: index for index, name in enumerate(header)}
    return np.array([position[name] for name in columns])


def parse_rows(block: str, first_line: int, header: list[str], source: str) -> np.ndarray:
    """The rows of ``block`` (whole lines) as (n, len(header)) float64, columns in file order;
    blank lines skipped.

    numpy reads the block; if it refuses it, or reads NaN or infinity, ``_raise_first_problem``
    re-reads it line by line to say where. Lines of spaces only (which numpy takes for one empty
    field) are dropped and the rest read again."""
    try:
        X = _loadtxt(io.StringIO(block))
    except ValueError as error:
        lines = block.split("\n")
        _raise_first_problem(lines, first_line, header, source)
        try:
            X = _loadtxt([line for line in lines if line.strip()])
        except ValueError:
            raise PipelineError(f"{source} lines {first_line}-{first_line + len(lines) - 1}: {error}") from None
    if len(X) and (X.shape[1] != len(header) or not np.isfinite(X).all()):
        lines = block.split("\n")
        _raise_first_problem(lines, first_line, header, source)
        raise PipelineError(f"{source} lines {first_line}-{first_line + len(lines) - 1} cannot be read as numbers")
    return X


def _loadtxt(lines) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": our caller decides
        return np.loadtxt(lines, delimiter=",", quotechar=QUOTE, comments=None, dtype=np.float64, ndmin=2)


def _raise_first_problem(lines: list[str], first_line: int, header: list[str], source: str) -> None:
    """Raise the error of the first bad line: ragged, or a field that is not a finite number.
    Returns if every line is fine (then only lines of spaces upset numpy)."""
    for offset, line in enumerate(lines):
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
