"""The command line, `python -m housing_predictor` (the image's entrypoint). numpy and safetensors only.

    predict --model {float,q8,q16,q8int} [--input FILE] [--output FILE]
        CSV in (a header naming the 8 features, any column order), CSV out (one `prediction` column).
    selfcheck
        Every model on the holdout sample the evaluate stage exported (models/selfcheck.csv): each
        must reproduce its expected predictions to 1e-9, and each quantized model's deviation from
        the float model must match its metrics/<model>.json. No network, no data set.
    serve [--host HOST] [--port PORT] [--workers N] [--invocations-model NAME]
        The models over HTTP: Open Inference Protocol (V2) and /invocations (housing_predictor/server/).
    --version
        Provenance as JSON: git commit (env GIT_COMMIT, else `git rev-parse HEAD` in a checkout),
        per model its params and their hash (the version the server serves), the metrics.

CSV is read in blocks (csv_io), so memory stays flat for any input size; predictions are written
with ``repr``, the shortest text that reads back as the same float64, to a target that is
respected (output). Bad input is one line on stderr and exit 2, a stop signal one line and exit
128 + its number (errors.run_guarded); lines are numbered counting the header as line 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from housing_predictor import paths
from housing_predictor.csv_io import read_table
from housing_predictor.errors import PipelineError, run_guarded
from housing_predictor.linear import TARGET_UNIT_USD
from housing_predictor.models import Model, PredictionOverflow, load_metrics, load_models
from housing_predictor.output import open_output, stdout_writer

PROG = "python -m housing_predictor"
SELFCHECK_TOLERANCE = 1e-9  # absolute, in the target's unit ($100,000)
OUTPUT_COLUMN = "prediction"
REPOSITORY = Path(__file__).resolve().parents[1]


@contextmanager
def open_input(path: str | None) -> Iterator[tuple[BinaryIO, str]]:
    """``(binary stream, name for messages)``: the file, or stdin for None or '-'."""
    if path in (None, "-"):
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise PipelineError("input stdin is closed: redirect it, or use --input FILE")
        yield sys.stdin.buffer, "stdin"
        return
    try:
        stream = open(path, "rb")  # closed below, once the caller is done
    except OSError as error:
        raise PipelineError(f"input {path} cannot be read: {error.strerror}") from None
    with stream:
        yield stream, f"input {path}"


def format_predictions(predictions: np.ndarray) -> bytes:
    """One line per prediction, ``repr``: the shortest decimal that reads back as the same float64."""
    return ("\n".join(map(repr, predictions.tolist())) + "\n").encode()


def predict_command(args: argparse.Namespace) -> None:
    """Stream the input CSV to predictions, block by block."""
    model = Model(args.model, Path(args.models_dir))
    with open_input(args.input) as (stream, source), open_output(args.output, _fstat(stream)) as write:
        header = f"{OUTPUT_COLUMN}\n".encode()  # written with the first rows: a bad input writes nothing
        rows_done = 0
        for X in read_table(stream, model.features, source):
            try:
                predictions = model.predict(X)
            except PredictionOverflow as overflow:
                row = rows_done + overflow.row + 1
                raise PipelineError(
                    f"{source}: the prediction of data row {row} overflows float64 (its values are too large)"
                ) from None
            write(header + format_predictions(predictions))
            header = b""
            rows_done += len(X)


def _fstat(stream: BinaryIO) -> os.stat_result | None:
    try:
        return os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None


def run_selfcheck(models_dir: Path, metrics_path: Path, sample_path: Path) -> list[str]:
    """Every model on the exported holdout sample; returns the report lines, raises on a mismatch."""
    metrics = load_metrics(metrics_path)
    models = load_models(models_dir)
    features = models["float"].features
    columns = [*features, *models]
    try:
        with open(sample_path, "rb") as stream:
            sample = np.concatenate(list(read_table(stream, columns, f"selfcheck sample {sample_path}")))
    except FileNotFoundError:
        raise PipelineError(f"selfcheck sample {sample_path} is missing: run `dvc repro` (stage evaluate writes it)") from None
    X, expected = sample[:, : len(features)], dict(zip(models, sample[:, len(features) :].T, strict=True))
    predictions = {name: model.predict(X) for name, model in models.items()}

    report, failures = [], []
    for name in models:
        error = float(np.max(np.abs(predictions[name] - expected[name])))
        line = f"{name}: {len(X)} rows, max |prediction - expected| = {error:.3g}"
        if not error <= SELFCHECK_TOLERANCE:
            failures.append(
                f"{name} predictions differ from the expected ones by up to {error:.3g} (tolerance {SELFCHECK_TOLERANCE:g})"
            )
        if name != "float":
            deviation = float(np.max(np.abs(predictions[name] - predictions["float"])))
            try:
                recorded = float(metrics[name]["max_deviation_usd"]) / TARGET_UNIT_USD
            except (KeyError, TypeError, ValueError):
                raise PipelineError(
                    f"metrics file {paths.metrics_file(name, metrics_path)} has no max_deviation_usd: run `dvc repro`"
                ) from None
            line += f", max deviation from float = {deviation:.6g} (metrics: {recorded:.6g})"
            if not abs(deviation - recorded) <= SELFCHECK_TOLERANCE:
                failures.append(
                    f"{name} deviates from float by up to {deviation:.9g} on the sample, {paths.metrics_file(name, metrics_path)} says {recorded:.9g}"
                )
        report.append(line)
    if failures:
        raise PipelineError("selfcheck failed: " + "; ".join(failures))
    return [*report, f"selfcheck passed: {len(models)} models agree with {sample_path} and {metrics_path}"]


def selfcheck_command(args: argparse.Namespace) -> None:
    report = run_selfcheck(Path(args.models_dir), Path(args.metrics), Path(args.models_dir) / paths.SELFCHECK_CSV.name)
    stdout_writer()("".join(f"{line}\n" for line in report).encode())


def serve_command(args: argparse.Namespace) -> None:
    from housing_predictor.server.run import serve  # uvicorn and Starlette: loaded for `serve` only

    serve(args)


def provenance(models_dir: Path, metrics_path: Path) -> dict:
    """What built these models: the commit, each model's params (and their hash), the metrics."""
    return {
        "git_commit": os.environ.get("GIT_COMMIT") or checkout_commit() or "unknown",
        "image_version": os.environ.get("IMAGE_VERSION") or "unknown",
        "models": {name: model.metadata() for name, model in load_models(models_dir).items()},
        "metrics": load_metrics(metrics_path),
    }


def checkout_commit() -> str | None:
    """The commit of the git checkout this code runs from, if it runs from one and git is there
    (the image sets GIT_COMMIT instead, and has neither)."""
    if not (REPOSITORY / ".git").exists():
        return None
    import subprocess

    try:
        result = subprocess.run(
            ["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str) -> None:
        raise PipelineError(f"{message} (see `{self.prog} --help`)")


def argument_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Predict median house values (California Housing) with the pipeline's models.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the models' provenance (git commit, params hash, metrics) as JSON"
    )
    parser.add_argument(
        "--models-dir", default=str(paths.MODELS_DIR), help="folder of the model files and selfcheck.csv (default: %(default)s)"
    )
    parser.add_argument(
        "--metrics", default=str(paths.METRICS_DIR), help="folder of the evaluate stage's <model>.json (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", metavar="{predict,selfcheck,serve}")
    predict = commands.add_parser(
        "predict",
        help="CSV of features in, CSV of predictions out",
        description="Read CSV with a header naming the 8 features (any order), write CSV with one `prediction` column "
        "(in $100,000), one row per input row. Lines in messages count the header as line 1.",
    )
    predict.add_argument("--model", required=True, choices=paths.MODELS, help="which model predicts")
    predict.add_argument("--input", help="CSV file to read (default: stdin)")
    predict.add_argument("--output", help="CSV file to write, replaced only when the run succeeds (default: stdout)")
    predict.set_defaults(run=predict_command)
    selfcheck = commands.add_parser(
        "selfcheck",
        help="verify every model on the exported holdout sample (no network)",
        description=f"Run every model on models/selfcheck.csv; fail unless each reproduces its expected predictions to "
        f"{SELFCHECK_TOLERANCE:g} and the quantized models' deviations match the metrics file.",
    )
    selfcheck.set_defaults(run=selfcheck_command)
    serve = commands.add_parser(
        "serve",
        help="serve the models over HTTP (Open Inference Protocol V2, /invocations)",
        description="Serve every model over HTTP: the Open Inference Protocol (V2) REST API and MLflow/SageMaker's "
        "/ping and /invocations. Options override the SERVE_* environment variables (docs/serving.md).",
    )
    # (here, not in server/settings.py, so that no other command imports the server's package)
    serve.add_argument("--host", help="address to listen on (default: $SERVE_HOST, else 127.0.0.1)")
    serve.add_argument("--port", help="TCP port, 0 for any free one (default: $SERVE_PORT, else 8080)")
    serve.add_argument("--workers", help="worker processes (default: $WEB_CONCURRENCY, else 1)")
    serve.add_argument("--invocations-model", help="the model /invocations uses (default: $SERVE_INVOCATIONS_MODEL, else float)")
    serve.set_defaults(run=serve_command)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser()
    args = parser.parse_args(argv)
    if args.version:
        stdout_writer()((json.dumps(provenance(Path(args.models_dir), Path(args.metrics)), indent=2) + "\n").encode())
    elif args.command is None:
        parser.error("a command is required: predict, selfcheck or serve")
    else:
        args.run(args)


if __name__ == "__main__":
    run_guarded(main)
