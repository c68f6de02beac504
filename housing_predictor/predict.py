"""The predictor: `python -m housing_predictor`, the container's entrypoint. numpy and safetensors only.

    predict --model {float,q8,q16} [--input FILE] [--output FILE]
        CSV in (a header naming the 8 features, any column order), CSV out (one `prediction` column).
    selfcheck
        Every model on the holdout sample the evaluate stage exported (models/selfcheck.csv): each
        must reproduce its expected predictions to 1e-9, and each quantized model's deviation from
        the float model must match metrics/evaluate.json. No network, no data set.
    serve [--host HOST] [--port PORT]
        The models over HTTP: Open Inference Protocol (V2) and /invocations (housing_predictor/serve.py).
    --version
        Provenance as JSON: git commit (env GIT_COMMIT), per model its params and their hash, the metrics.

Input is read in blocks of whole lines, so memory stays flat for any input size. Numbers are parsed
by a vectorized reader (see "Reading numbers, fast") that gives exactly what Python's ``float`` gives;
anything it cannot read (exponents, spaces, garbage) goes through ``float`` one field at a time,
which also names the line and column of a bad value. Predictions are written with ``repr``, the
shortest text that reads back as the same float64.

Bad input is one line on stderr and exit 2 (housing_predictor.errors.run_guarded); lines are numbered counting
the header as line 1.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# One small matrix-vector product per block needs no BLAS threads, and OpenBLAS starts its pool of
# threads when numpy loads: on a busy machine that alone costs more than the rest of a one-row run.
# Set before numpy is imported; a value already in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from housing_predictor import paths, serve  # noqa: E402
from housing_predictor.artifacts import SavedModel, load_model, read_json, replacing  # noqa: E402
from housing_predictor.errors import PipelineError, run_guarded  # noqa: E402
from housing_predictor.linear import LinearParams  # noqa: E402
from housing_predictor.quantization import dequantize_model  # noqa: E402

PROG = "python -m housing_predictor"
SELFCHECK_TOLERANCE = 1e-9  # absolute, in the target's unit ($100,000)
BLOCK_BYTES = 1 << 18  # input read per step: numpy's per-call costs vanish, and peak memory stays ~43 MB
MAX_LINE_BYTES = 1 << 24  # a "line" longer than this is not a CSV row of numbers: refuse before it fills memory
MAX_HEADER_BYTES = 1 << 16
OUTPUT_COLUMN = "prediction"


# ---------------------------------------------------------------------------------------------
# Reading numbers, fast.
#
# numpy's own text readers (loadtxt, fromstring) call strtod once per value and run at ~50 MB/s;
# this reads a block of plain decimals ([-]digits[.digits], up to 18 digits) with a few dozen array
# operations per block instead, and is exact:
#  - dots are deleted (bytes.replace), so each field is [-]digits; we remember where each dot was;
#  - the last 24 bytes before each field's end are read as three little-endian uint64 "lanes",
#    masked to the field's digits, and each lane's 8 digits become an integer with three
#    multiply-shift steps (the SWAR trick of simdjson and fast_float);
#  - mantissa m (< 10**18, exact in int64) and j digits after the dot give the value m / 10**j.
#    For m <= 2**53 both operands are exact doubles and one IEEE division rounds correctly
#    (Clinger's fast path). Larger m go through exact integer long division (``_exact_quotients``).
# Any field it cannot read this way is returned as "unread" and parsed with ``float``.
# ---------------------------------------------------------------------------------------------

COMMA, NEWLINE, DOT, MINUS = b",\n.-"
MAX_DIGITS = 18  # 10**18 < 2**63: a mantissa of up to 18 digits is exact in int64
LANE_PAD = b"0" * 24  # before the block, so every field has 24 readable bytes before its end
PLAIN_DECIMAL_BYTES = b"0123456789,\n-"  # what may remain once dots are deleted
POW10_INT = 10 ** np.arange(MAX_DIGITS + 1, dtype=np.int64)
POW10_FLOAT = 10.0 ** np.arange(MAX_DIGITS + 1)  # exact doubles up to 1e22
POW5_INT = 5 ** np.arange(MAX_DIGITS + 1, dtype=np.int64)
TWO_53 = 2**53


def _lane_masks() -> np.ndarray:
    """``masks[lane, d]``: the bits of lane 0, 1 or 2 (the 24 bytes before a field's end, in order)
    that hold digits of a field of ``d`` digits; only each byte's low nibble, the digit's value.
    Masked-out bytes become 0, which the digit arithmetic reads as a leading '0'."""
    masks = np.zeros((3, MAX_DIGITS + 2), dtype=np.uint64)
    for lane in range(3):
        for digits in range(MAX_DIGITS + 2):
            kept = min(max(digits - 8 * (2 - lane), 0), 8)  # a field's digits fill the lanes from the right
            # the field's last characters are the lane's high bytes (little-endian)
            masks[lane, digits] = (((1 << 64) - 1) ^ ((1 << (8 * (8 - kept))) - 1)) & 0x0F0F0F0F0F0F0F0F
    return masks


LANE_MASKS = _lane_masks()


def _lane_values(lanes: np.ndarray) -> np.ndarray:
    """The integer that each uint64 of 8 digit values (one per byte, first digit in the low byte,
    high nibbles clear) spells: pairs, then quads, then all eight, each a multiply and a shift."""
    pairs = lanes * np.uint64(2561) >> np.uint64(8)  # 10 * 2**8 + 1
    quads = (pairs & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601) >> np.uint64(16)  # 100 * 2**16 + 1
    return ((quads & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001) >> np.uint64(32)).astype(np.int64)


def _digit_lane(words: np.ndarray, ends: np.ndarray, n_digits: np.ndarray, lane: int) -> np.ndarray:
    """Lane ``lane`` (0, 1, 2) of each field, as 8 digit values: the 8 bytes starting 24 - 8 * lane
    bytes before its end, masked to the field's digits."""
    return words[ends - 8 * (3 - lane)] & LANE_MASKS[lane][n_digits]


def _exact_quotients(mantissa: np.ndarray, frac_digits: np.ndarray) -> np.ndarray:
    """Correctly rounded ``mantissa / 10**frac_digits`` for 2**53 < mantissa < 10**18.

    ``m / 10**j = (m / 5**j) * 2**-j``, and the power of two is exact. ``m / 5**j`` is computed by
    integer long division to a quotient Q >= 2**54 and remainder r; ``2Q + (r != 0)`` (a sticky bit)
    has at least 56 bits, so converting it to float64 (round to nearest even) rounds exactly as
    the true quotient would. The result is scaled by ldexp, exactly.
    """
    divisor = POW5_INT[frac_digits]  # < 5**18 < 2**42
    quotient, remainder = np.divmod(mantissa, divisor)
    _, bit_length = np.frexp(quotient.astype(np.float64))  # may be one too high when rounding up
    shift = np.maximum(56 - bit_length, 0).astype(np.int64)  # so quotient << shift >= 2**54
    todo = shift.copy()
    while todo.any():
        step = np.minimum(todo, 21)  # remainder < 2**42: remainder << 21 < 2**63
        remainder = remainder << step
        quotient = (quotient << step) + remainder // divisor
        remainder = remainder % divisor
        todo -= step
    sticky = (quotient << 1) | (remainder != 0)
    return np.ldexp(sticky.astype(np.float64), -(shift + 1 + frac_digits))


def parse_block(block: bytes, n_columns: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The numbers of ``block`` (whole lines, each ending in a newline, no carriage returns).

    Returns ``(values, unread)``: ``values`` (n_lines * n_columns,) float64 in reading order, exact
    for every field but those whose indices are in ``unread`` (not a plain decimal of at most 18
    digits: exponents, spaces, '+', text, empty fields...), which the caller parses with ``float``.
    Returns None when some line does not have ``n_columns`` fields.
    """
    digits = block.replace(b".", b"")
    data = LANE_PAD + digits
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero((buf == COMMA) | (buf == NEWLINE))  # each field's end, in `data`
    separators = buf[ends]
    if len(ends) % n_columns:
        return None
    separators = separators.reshape(-1, n_columns)
    if not (separators[:, -1] == NEWLINE).all() or (separators[:, :-1] == NEWLINE).any():
        return None

    starts = np.empty_like(ends)
    starts[0] = len(LANE_PAD)
    starts[1:] = ends[:-1] + 1
    negative = buf[starts] == MINUS
    n_digits = ends - starts - negative
    unread = (n_digits < 1) | (n_digits > MAX_DIGITS)

    # The k-th dot of the block, at byte p, was at p - k + len(LANE_PAD) of `data`.
    dots = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == DOT)
    dot_at = dots - np.arange(len(dots)) + len(LANE_PAD)
    # (garbage in frac_digits only where unread; capped so that it stays a valid index)
    if len(dots) == len(ends) and (dot_at >= starts).all() and (dot_at <= ends).all():
        frac_digits = np.minimum(ends - dot_at, MAX_DIGITS)  # the usual case: one dot per field
        unread |= negative & (dot_at == starts)  # '.-5': the dot stood before the sign
    else:
        owner = np.searchsorted(ends, dot_at)
        unread[owner[1:][np.diff(owner) == 0]] = True  # two dots in one field
        unread[owner[negative[owner] & (dot_at == starts[owner])]] = True  # '.-5'
        frac_digits = np.zeros(len(ends), dtype=np.int64)
        frac_digits[owner] = np.minimum(ends[owner] - dot_at, MAX_DIGITS)

    if digits.translate(None, PLAIN_DECIMAL_BYTES):  # some byte other than digits, separators, '-'
        strange = np.flatnonzero(np.isin(buf, np.frombuffer(PLAIN_DECIMAL_BYTES, dtype=np.uint8), invert=True))
        unread[np.searchsorted(ends, strange)] = True
    if digits.count(b"-") != np.count_nonzero(negative):  # a '-' after a field's first character
        minus = np.flatnonzero(buf == MINUS)
        unread[np.searchsorted(ends, minus[~np.isin(minus, starts)])] = True

    # Every 8-byte window of `data` as a uint64, unaligned: no copy, one gather per lane.
    words = np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    n_digits = np.minimum(n_digits, MAX_DIGITS + 1)
    mantissa = _lane_values(_digit_lane(words, ends, n_digits, 1)) * POW10_INT[8]
    mantissa += _lane_values(_digit_lane(words, ends, n_digits, 2))
    long = np.flatnonzero(n_digits > 16)
    if len(long):
        mantissa[long] += _lane_values(_digit_lane(words, ends[long], n_digits[long], 0)) * POW10_INT[16]

    values = mantissa / POW10_FLOAT[frac_digits]
    inexact = np.flatnonzero((mantissa > TWO_53) & ~unread)
    if len(inexact):
        values[inexact] = _exact_quotients(mantissa[inexact], frac_digits[inexact])
    np.negative(values, out=values, where=negative)
    return values, np.flatnonzero(unread)


# ---------------------------------------------------------------------------------------------
# CSV input: the header, blocks of lines, and the slow exact path that names what is wrong.
# ---------------------------------------------------------------------------------------------


def read_header(stream: io.BufferedIOBase, source: str) -> list[str]:
    """Column names of the first line (UTF-8, optional BOM; a name may be in double quotes).

    Split by hand rather than with the csv module: its import costs start-up time, and the names
    we accept hold no commas or quotes, so a name that did would be refused as unknown anyway."""
    try:
        line = stream.readline(MAX_HEADER_BYTES)
    except OSError as error:
        raise PipelineError(f"{source} cannot be read: {error.strerror or error}") from None
    if not line:
        raise PipelineError(f"{source} is empty: expected a CSV header line naming the columns")
    if not line.strip():
        raise PipelineError(f"{source} line 1 is blank: expected a CSV header line naming the columns")
    if not line.endswith(b"\n") and len(line) == MAX_HEADER_BYTES:
        raise PipelineError(f"{source} line 1 (the header) is longer than {MAX_HEADER_BYTES} bytes")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PipelineError(f"{source} line 1 (the header) is not UTF-8 text") from None
    names = [name.strip() for name in text.rstrip("\r\n").split(",")]
    return [name[1:-1].strip() if len(name) >= 2 and name[0] == name[-1] == '"' else name for name in names]


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
        problems.append(f"unknown column{'s' * (len(unknown) > 1)} {', '.join(repr(n) for n in unknown)}")
    if repeated:
        problems.append(f"repeated column{'s' * (len(repeated) > 1)} {', '.join(repeated)}")
    if problems:
        raise PipelineError(f"{source} header: {'; '.join(problems)} (expected the columns {', '.join(columns)}, in any order)")
    return np.array([header.index(name) for name in columns])


def iter_blocks(stream: io.BufferedIOBase, source: str, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, bytes]]:
    """``(line number of the block's first line, block)``: whole lines, each ending in '\\n', '\\r\\n'
    turned into '\\n'. The header is line 1, so the first block starts at line 2."""
    line_number = 2
    rest = b""
    while True:
        try:
            data = stream.read(block_bytes)
        except OSError as error:
            raise PipelineError(f"{source} cannot be read: {error.strerror or error}") from None
        if not data:
            if rest:
                yield line_number, _normalised(rest + b"\n")
            return
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > MAX_LINE_BYTES:
                raise PipelineError(f"{source} line {line_number} is longer than {MAX_LINE_BYTES} bytes")
            rest = data
            continue
        block, rest = data[:cut], data[cut:]
        yield line_number, _normalised(block)
        line_number += block.count(b"\n")


def _normalised(block: bytes) -> bytes:
    return block.replace(b"\r\n", b"\n") if b"\r" in block else block


def _ragged_line_error(block: bytes, first_line: int, n_columns: int, source: str) -> PipelineError:
    """The first line of ``block`` whose field count is wrong, as an error."""
    for offset, line in enumerate(block.split(b"\n")[:-1]):
        if not line.strip():
            return PipelineError(f"{source} line {first_line + offset} is empty, expected {n_columns} fields")
        n_fields = line.count(b",") + 1
        if n_fields != n_columns:
            return PipelineError(f"{source} line {first_line + offset} has {n_fields} fields, expected {n_columns}")
    raise AssertionError("parse_block found a ragged line that the line scan does not")


def parse_value(text: bytes, where: str) -> float:
    """One field, exactly as Python's ``float`` reads it (surrounding spaces allowed); finite only."""
    stripped = text.strip()
    shown = stripped.decode("utf-8", "replace")
    shown = repr(shown if len(shown) <= 40 else shown[:37] + "...")
    if not stripped:
        raise PipelineError(f"{where} is empty, expected a number")
    try:
        if b"_" in stripped:  # float() accepts '1_000'; a CSV number does not have them
            raise ValueError
        value = float(stripped)
    except ValueError:
        raise PipelineError(f"{where}: {shown} is not a number") from None
    if not math.isfinite(value):
        raise PipelineError(f"{where}: {shown} is not a finite number (NaN and infinity are refused)")
    return value


def parse_rows(block: bytes, first_line: int, header: list[str], source: str) -> np.ndarray:
    """The block's rows as a (n_lines, len(header)) float64 array, columns in file order."""
    n_columns = len(header)
    parsed = parse_block(block, n_columns)
    if parsed is None:
        raise _ragged_line_error(block, first_line, n_columns, source)
    values, unread = parsed
    if len(unread):
        lines = block.split(b"\n")
        for field in unread.tolist():
            row, column = divmod(field, n_columns)
            text = lines[row].split(b",")[column]
            values[field] = parse_value(text, f"{source} line {first_line + row}, column {header[column]}")
    return values.reshape(-1, n_columns)


def read_table(
    stream: io.BufferedIOBase, columns: list[str], source: str, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first line number, rows)`` per block, rows (n, len(columns)) float64 in ``columns``' order.
    Refuses input with no data rows."""
    header = read_header(stream, source)
    order = column_order(header, columns, source)
    empty = True
    for first_line, block in iter_blocks(stream, source, block_bytes):
        rows = parse_rows(block, first_line, header, source)
        empty = False
        yield first_line, rows if np.array_equal(order, np.arange(len(order))) else rows[:, order]
    if empty:
        raise PipelineError(f"{source} has a header but no data rows")


@contextmanager
def open_input(path: str | None) -> Iterator[tuple[io.BufferedIOBase, str]]:
    """``(binary stream, name for messages)``: the file, or stdin for None or '-'."""
    if path in (None, "-"):
        yield sys.stdin.buffer, "stdin"
        return
    try:
        stream = open(path, "rb")  # closed below, once the caller is done
    except OSError as error:
        raise PipelineError(f"input {path} cannot be read: {error.strerror}") from None
    with stream:
        yield stream, f"input {path}"


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def format_predictions(predictions: np.ndarray) -> bytes:
    """One line per prediction, ``repr``: the shortest decimal that reads back as the same float64."""
    return ("\n".join(map(repr, predictions.tolist())) + "\n").encode()


@contextmanager
def open_output(path: str | None) -> Iterator[io.BufferedIOBase]:
    """stdout, or a file that replaces ``path`` only when the caller succeeds (artifacts.replacing):
    a failed run leaves no half-written file and does not clobber the one that was there."""
    if path in (None, "-"):
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        with replacing(Path(path)) as stream:
            yield stream
    except OSError as error:  # creating, writing or renaming (input errors arrive as PipelineError)
        raise PipelineError(f"output {path} cannot be written: {error.strerror or error}") from None


# ---------------------------------------------------------------------------------------------
# Models and commands
# ---------------------------------------------------------------------------------------------


def load_linear(name: str, models_dir: Path) -> tuple[SavedModel, LinearParams]:
    """Model ``name``'s verified file and the float64 model it stands for (as the pipeline computes it)."""
    saved = load_model(paths.model_file(name, models_dir))
    return saved, dequantize_model(saved.tensors, saved.scheme)


def predict_command(args: argparse.Namespace) -> None:
    """Stream the input CSV to predictions, block by block."""
    saved, model = load_linear(args.model, Path(args.models_dir))
    with open_input(args.input) as (stream, source), open_output(args.output) as out:
        out.write(f"{OUTPUT_COLUMN}\n".encode())
        for first_line, X in read_table(stream, saved.features, source):
            predictions = model.predict(X)
            if not np.isfinite(predictions).all():
                row = int(np.flatnonzero(~np.isfinite(predictions))[0])
                raise PipelineError(f"{source} line {first_line + row}: the prediction overflows float64 (values too large)")
            out.write(format_predictions(predictions))


def run_selfcheck(models_dir: Path, metrics_path: Path, sample_path: Path) -> list[str]:
    """Every model on the exported holdout sample; returns the report lines, raises on a mismatch."""
    metrics = read_json(metrics_path, "metrics file")
    loaded = {name: load_linear(name, models_dir) for name in paths.MODEL_NAMES}
    features = loaded["float"][0].features
    for name, (saved, _) in loaded.items():
        if saved.features != features:
            raise PipelineError(f"model {name} reads features {saved.features}, the float model {features}")
    columns = [*features, *paths.MODEL_NAMES]
    try:
        with open(sample_path, "rb") as stream:
            sample = np.concatenate([rows for _, rows in read_table(stream, columns, f"selfcheck sample {sample_path}")])
    except FileNotFoundError:
        raise PipelineError(f"selfcheck sample {sample_path} is missing: run `dvc repro` (stage evaluate writes it)") from None
    X, expected = sample[:, : len(features)], dict(zip(paths.MODEL_NAMES, sample[:, len(features) :].T, strict=True))
    predictions = {name: model.predict(X) for name, (_, model) in loaded.items()}

    report, failures = [], []
    for name in paths.MODEL_NAMES:
        error = float(np.max(np.abs(predictions[name] - expected[name])))
        line = f"{name}: {len(X)} rows, max |prediction - expected| = {error:.3g}"
        if not error <= SELFCHECK_TOLERANCE:
            failures.append(
                f"{name} predictions differ from the expected ones by up to {error:.3g} (tolerance {SELFCHECK_TOLERANCE:g})"
            )
        if name != "float":
            deviation = float(np.max(np.abs(predictions[name] - predictions["float"])))
            try:
                recorded = float(metrics[name]["max_deviation"])
            except (KeyError, TypeError, ValueError):
                raise PipelineError(f"metrics file {metrics_path} has no max_deviation for {name}: run `dvc repro`") from None
            line += f", max deviation from float = {deviation:.6g} (metrics: {recorded:.6g})"
            if not abs(deviation - recorded) <= SELFCHECK_TOLERANCE:
                failures.append(
                    f"{name} deviates from float by up to {deviation:.9g} on the sample, {metrics_path} says {recorded:.9g}"
                )
        report.append(line)
    if failures:
        raise PipelineError("selfcheck failed: " + "; ".join(failures))
    return [*report, f"selfcheck passed: {len(loaded)} models agree with {sample_path} and {metrics_path}"]


def selfcheck_command(args: argparse.Namespace) -> None:
    for line in run_selfcheck(Path(args.models_dir), Path(args.metrics), Path(args.models_dir) / paths.SELFCHECK_CSV.name):
        print(line)


def params_hash(params: dict) -> str:
    """sha256 of the params in canonical JSON (sorted keys, no spaces): equal params, equal hash."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def provenance(models_dir: Path, metrics_path: Path) -> dict:
    """What built these models: the commit, each model's params (and their hash), the metrics."""
    models = {}
    for name in paths.MODEL_NAMES:
        saved = load_model(paths.model_file(name, models_dir))
        models[name] = {
            "scheme": saved.scheme,
            "bits": saved.bits,
            "params_sha256": params_hash(saved.params),
            "params": saved.params,
        }
    return {
        "git_commit": os.environ.get("GIT_COMMIT") or "unknown",
        "image_version": os.environ.get("IMAGE_VERSION") or "unknown",
        "models": models,
        "metrics": read_json(metrics_path, "metrics file"),
    }


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str) -> None:
        raise PipelineError(f"{message} (see `{self.prog} --help`)")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter at a fixed width: argparse makes one for every argument it adds, and
    the default asks the terminal for its width each time (importing shutil), a cost at every start."""

    def __init__(self, prog: str, width: int | None = None, **options) -> None:
        super().__init__(prog, width=width or 98, **options)


def argument_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        formatter_class=HelpFormatter,
        description="Predict median house values (California Housing) with the pipeline's models.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the models' provenance (git commit, params hash, metrics) as JSON"
    )
    parser.add_argument(
        "--models-dir", default=str(paths.MODELS_DIR), help="folder of the model files and selfcheck.csv (default: %(default)s)"
    )
    parser.add_argument(
        "--metrics", default=str(paths.EVALUATE_METRICS), help="the evaluate stage's metrics (default: %(default)s)"
    )
    # (an explicit prog spares argparse a help formatter, and its imports, at every start)
    commands = parser.add_subparsers(dest="command", metavar="{predict,selfcheck,serve}", prog=PROG)
    predict = commands.add_parser(
        "predict",
        formatter_class=HelpFormatter,
        help="CSV of features in, CSV of predictions out",
        description="Read CSV with a header naming the 8 features (any order), write CSV with one `prediction` column "
        "(in $100,000), one row per input row. Lines in messages count the header as line 1.",
    )
    predict.add_argument("--model", required=True, choices=paths.MODEL_NAMES, help="which model predicts")
    predict.add_argument("--input", help="CSV file to read (default: stdin)")
    predict.add_argument("--output", help="CSV file to write, replaced only when the run succeeds (default: stdout)")
    predict.set_defaults(run=predict_command)
    selfcheck = commands.add_parser(
        "selfcheck",
        formatter_class=HelpFormatter,
        help="verify every model on the exported holdout sample (no network)",
        description=f"Run every model on models/selfcheck.csv; fail unless each reproduces its expected predictions to "
        f"{SELFCHECK_TOLERANCE:g} and the quantized models' deviations match the metrics file.",
    )
    selfcheck.set_defaults(run=selfcheck_command)
    serve.add_parser(commands, HelpFormatter)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(json.dumps(provenance(Path(args.models_dir), Path(args.metrics)), indent=2))
    elif args.command is None:
        parser.error("a command is required: predict, selfcheck or serve")
    else:
        args.run(args)


def entrypoint() -> None:
    """``main`` with bad input as one line and exit 2; a closed stdout (``| head``) ends quietly."""
    try:
        run_guarded(main)
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point stdout at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    entrypoint()
