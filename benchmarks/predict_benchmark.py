"""Figures for the predictor: throughput against pandas, peak memory, cold start, runtime size.

    python benchmarks/predict_benchmark.py [--models-dir models] [--rows 1000000] [--repeat 3]

Run from the repository root after `dvc repro`, with the baselines' libraries installed
(`pip install -r benchmarks/requirements.txt`: pandas and polars are not project dependencies; a
baseline whose library is missing is skipped with a note). Writes a CSV of ``--rows`` rows sampled
from the data set (data/train.csv + data/test.csv), as pandas writes them, in a temp folder, then
times, as subprocesses: `predict` of one row against `python -c "import numpy"`; every model's
`predict` against pandas (read_csv, predict, to_csv) and polars on the same file; the peak RSS of
`predict` on 10,000 and on all rows; where one run's time goes. Last, the runtime's size: the
image's install steps replayed into a `pip install --target` folder.

Other work on the machine slows every run; the best of ``--repeat`` runs is the least disturbed, so
ratios use best times, and medians are printed beside them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from housing_predictor import csv_io, paths  # noqa: E402
from housing_predictor.cli import format_predictions  # noqa: E402
from housing_predictor.models import Model  # noqa: E402

BENCHMARK_REQUIREMENTS = REPO / "benchmarks" / "requirements.txt"
# The baselines do the predictor's job with another library: read the CSV, predict with the float
# model's folded weights (argv 3: JSON [weights, bias]), write one `prediction` column.
PANDAS_BASELINE = """
import json, sys, pandas as pd, numpy as np
weight, bias = json.loads(sys.argv[3])
frame = pd.read_csv(sys.argv[1])
X = frame[json.loads(sys.argv[4])].to_numpy()
pd.DataFrame({"prediction": X @ np.array(weight) + bias}).to_csv(sys.argv[2], index=False)
"""
POLARS_BASELINE = """
import json, sys, polars as pl, numpy as np
weight, bias = json.loads(sys.argv[3])
frame = pl.read_csv(sys.argv[1])
X = frame.select(json.loads(sys.argv[4])).to_numpy()
pl.DataFrame({"prediction": X @ np.array(weight) + bias}).write_csv(sys.argv[2])
"""


def importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def data_set_features() -> tuple[list[str], np.ndarray]:
    """The data set's feature rows, from the pipeline's split files (`dvc repro` writes them)."""
    tables = []
    for split in (paths.TRAIN_CSV, paths.TEST_CSV):
        if not (REPO / split).exists():
            raise SystemExit(f"{split} is missing: run `dvc repro` first")
        tables.append(np.loadtxt(REPO / split, delimiter=",", skiprows=1))
    header = (REPO / paths.TRAIN_CSV).read_text().split("\n", 1)[0].split(",")
    return header[:8], np.concatenate(tables)[:, :8]


def write_sample_csv(path: Path, n_rows: int, seed: int = 0) -> str:
    """``n_rows`` rows sampled (with replacement) from the data set, written as pandas writes them
    (`DataFrame.to_csv(index=False)`); with the same text (repr of each float64) when pandas is not
    installed. Returns which writer wrote it."""
    features, X = data_set_features()
    rows = X[np.random.default_rng(seed).integers(0, len(X), n_rows)]
    if importable("pandas"):
        import pandas as pd

        pd.DataFrame(rows, columns=features).to_csv(path, index=False)
        return "pandas.DataFrame.to_csv"
    with open(path, "w") as out:
        out.write(",".join(features) + "\n")
        for start in range(0, n_rows, 100_000):
            out.write("".join(",".join(map(repr, row)) + "\n" for row in rows[start : start + 100_000].tolist()))
    return "repr (pandas not installed)"


# Runs a command and reports its wall time and peak RSS. A child forked from this (big) process
# would count this process's pages in its peak RSS until it execs: a small launcher avoids that.
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""


def measure(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one run of ``command``."""
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    *output, last = result.stderr.splitlines() or [""]
    figures = last.split()
    if result.returncode != 0 or len(figures) != 3 or figures[2] != "0":
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{result.stderr}")
    return float(figures[0]), int(figures[1]) / 1024


def repeated(commands: dict[str, list[str]], repeat: int, cwd: Path) -> dict[str, list[tuple[float, float]]]:
    """Each command ``repeat`` times, interleaved, so a burst of load hits them alike."""
    results = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            results[name].append(measure(command, cwd))
    return results


def stage_image_files(models_dir: Path, app: Path) -> None:
    """The image's /app: the predictor package as the Dockerfile copies it, compiled as its RUN line
    does (this checkout may run with PYTHONDONTWRITEBYTECODE, which would make every start compile
    it), with the models and metrics beside it."""
    shutil.copytree(REPO / "housing_predictor", app / "housing_predictor", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(models_dir, app / "models", ignore=shutil.ignore_patterns("*.joblib"))
    (app / "metrics").mkdir()
    for name in paths.MODELS:
        shutil.copy2(REPO / paths.metrics_file(name), app / "metrics")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(app / "housing_predictor")], check=True)


def predict_command(app: Path, model: str, source: Path, target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "housing_predictor",
        "--models-dir",
        str(app / "models"),
        "--metrics",
        str(app / "metrics"),
        "predict",
        "--model",
        model,
        "--input",
        str(source),
        "--output",
        str(target),
    ]


def breakdown(app: Path, model: str, source: Path, target: Path) -> dict[str, float]:
    """Seconds per step of one `predict` run, done step by step in this process."""
    model = Model(model, app / "models")
    spent = dict.fromkeys(("read and decode lines", "numpy.loadtxt", "predict", "format", "write"), 0.0)
    with open(source, "rb") as stream, open(target, "wb") as out:
        blocks = csv_io._blocks(stream, "input", csv_io.BLOCK_CHARS)
        _, first = next(blocks)
        header_line, _, first = first.partition("\n")
        header = csv_io.parse_header(header_line)
        order = csv_io.column_order(header, model.features, "input")
        clock = time.perf_counter()
        for first_line, block in itertools.chain([(2, first)], blocks):
            spent["read and decode lines"] += time.perf_counter() - clock
            clock = time.perf_counter()
            X = csv_io.parse_rows(block, first_line, header, "input")[:, order]
            spent["numpy.loadtxt"] += time.perf_counter() - clock
            clock = time.perf_counter()
            predictions = model.predict(X)
            spent["predict"] += time.perf_counter() - clock
            clock = time.perf_counter()
            text = format_predictions(predictions)
            spent["format"] += time.perf_counter() - clock
            clock = time.perf_counter()
            out.write(text)
            spent["write"] += time.perf_counter() - clock
            clock = time.perf_counter()
    return spent


def tree_bytes(*roots: Path) -> int:
    return sum(
        f.stat().st_size
        for root in roots
        if root.exists()
        for f in ([root] if root.is_file() else root.rglob("*"))
        if f.is_file()
    )


def runtime_size(work: Path) -> tuple[int, int]:
    """Bytes of the runtime as `pip install --target` leaves it, before and after the pruning."""
    target = work / "runtime"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "-r",
            str(REPO / "requirements-runtime.txt"),
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    before = tree_bytes(target)
    subprocess.run(["sh", str(REPO / "scripts" / "prune_runtime.sh"), str(target)], check=True)
    return before, tree_bytes(target)


def training_stack_bytes() -> int:
    """What the published image installs to predict: scikit-learn, scipy, numpy, joblib (from this venv)."""
    import numpy as numpy_module

    site = Path(numpy_module.__file__).parents[1]
    names = ("sklearn", "scikit_learn", "scipy", "numpy", "joblib", "threadpoolctl")
    return tree_bytes(*(p for p in site.iterdir() if p.name.split("-")[0].split(".")[0] in names))


def baselines(models_dir: Path, big: Path, out: Path) -> dict[str, list[str]]:
    """The pandas and polars commands, for the libraries that are installed (a note for the others)."""
    model = Model("float", models_dir)
    weight, bias = model.arithmetic.folded()
    argv = [str(big), str(out), json.dumps([weight.tolist(), bias]), json.dumps(model.features)]
    commands = {}
    for library, script in (("pandas", PANDAS_BASELINE), ("polars", POLARS_BASELINE)):
        if importable(library):
            commands[f"{library} read_csv + write"] = [sys.executable, "-c", script, *argv]
        else:
            print(
                f"note: {library} is not installed, so its baseline is skipped: "
                f"pip install -r {BENCHMARK_REQUIREMENTS.relative_to(REPO)}"
            )
    return commands


def library_versions() -> str:
    import importlib.metadata

    found = []
    for library in ("numpy", "pandas", "polars"):
        try:
            found.append(f"{library} {importlib.metadata.version(library)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=REPO / paths.MODELS_DIR)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    models_dir = args.models_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="predict-benchmark-") as folder:
        work = Path(folder)
        big, small, one, out = work / "big.csv", work / "small.csv", work / "one.csv", work / "out.csv"
        writer = write_sample_csv(big, args.rows)
        write_sample_csv(small, 10_000, seed=1)
        write_sample_csv(one, 1, seed=2)
        app = work / "app"
        stage_image_files(models_dir, app)
        mb = big.stat().st_size / 1e6
        print(
            f"input: {args.rows:,} rows sampled from the data set, {mb:.1f} MB of CSV written by {writer}; "
            f"Python {sys.version.split()[0]}, {library_versions()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f}\n"
        )

        cold = repeated(
            {
                "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
                "predict, 1 row (q8)": predict_command(app, "q8", one, out),
                "import sklearn + joblib (published)": [sys.executable, "-c", "import sklearn.linear_model, joblib"],
            },
            repeat=max(args.repeat * 5, 10),
            cwd=app,
        )
        print("Cold start (s)                            best   median   predict / this (target <= 1.5): best, median")
        predict_times = [t for t, _ in cold["predict, 1 row (q8)"]]
        for name, runs in cold.items():
            times = [t for t, _ in runs]
            ratios = f"{min(predict_times) / min(times):.2f}  {statistics.median(predict_times) / statistics.median(times):.2f}"
            print(f"  {name:38s}{min(times):6.3f}  {statistics.median(times):6.3f}   {ratios}")

        commands = baselines(models_dir, big, out)
        commands |= {f"predict --model {m}": predict_command(app, m, big, out) for m in paths.MODELS}
        runs = repeated(commands, args.repeat, cwd=app)
        reference = "pandas read_csv + write"
        baseline = min(t for t, _ in runs[reference]) if reference in runs else None
        print(f"\nThroughput, {args.rows:,} rows (s)          best   median  peak MiB   speed vs pandas (target >= 1.1)")
        for name, measured in runs.items():
            times = [t for t, _ in measured]
            speed = f"{baseline / min(times):.2f}x" if baseline else "-"
            print(
                f"  {name:36s}{min(times):6.2f}  {statistics.median(times):6.2f}  {max(r for _, r in measured):8.1f}   "
                f"{speed}  ({mb / min(times):.0f} MB/s)"
            )

        spent = breakdown(app, "q8", big, out)
        total = sum(spent.values())
        print(f"\nWhere one run's time goes (q8, in-process, {total:.2f} s):")
        for step, seconds in spent.items():
            print(f"  {step:14s}{seconds:6.3f} s  {100 * seconds / total:4.0f}%")

        memory = repeated(
            {
                "10,000 rows": predict_command(app, "q8", small, out),
                f"{args.rows:,} rows": predict_command(app, "q8", big, out),
                "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
            },
            repeat=1,
            cwd=app,
        )
        print("\nPeak RSS of predict (MiB; target <= 50 MB, flat)")
        for name, measured in memory.items():
            print(f"  {name:36s}{measured[0][1]:6.1f}")

        before, after = runtime_size(work)
        print("\nRuntime dependencies (pip install --target, the image's steps; target <= 60 MB)")
        print(f"  requirements-runtime.txt as installed {before / 2**20:6.1f} MiB")
        print(f"  after scripts/prune_runtime.sh        {after / 2**20:6.1f} MiB")
        print(f"  scikit-learn + scipy + numpy + joblib {training_stack_bytes() / 2**20:6.1f} MiB (the published image's)")


if __name__ == "__main__":
    main()
