"""Figures for the predictor (issue 7's targets): cold start, throughput, peak memory, runtime size.

    python benchmarks/predict_benchmark.py [--models-dir models] [--rows 1000000] [--repeat 3]

Run from the repository root after `dvc repro`. Generates a CSV of ``--rows`` rows (8 float columns
with the data set's magnitudes, written with repr like the pipeline's own files) in a temp folder,
then times, as subprocesses: `python -c "import numpy"` against `predict` of one row; numpy.loadtxt
+ numpy.savetxt against `predict` of every model on the same file; the peak RSS of `predict` on
10,000 and on all rows; and where one run's time goes (parse, dot product, format, write). Last, the
runtime's size: the image's install steps (pip install -r requirements-runtime.txt, then
scripts/prune_runtime.sh) replayed into a `pip install --target` folder.

Other work on the machine slows every run; the best of ``--repeat`` runs is the least disturbed, so
ratios use best times, and medians are printed beside them.
"""

from __future__ import annotations

import argparse
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

from housing_predictor import paths, predict  # noqa: E402

FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]
BASELINE = """
import sys, numpy as np
X = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
np.savetxt(sys.argv[2], X @ np.ones(X.shape[1]), header="prediction", comments="")
"""


def write_features_csv(path: Path, n_rows: int, seed: int = 0) -> None:
    """California-Housing-like features: incomes with 4 decimals, whole ages and populations,
    ratios at full precision (repr), coordinates with 2 decimals."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as out:
        out.write(",".join(FEATURES) + "\n")
        for start in range(0, n_rows, 100_000):
            n = min(100_000, n_rows - start)
            columns = [
                np.round(rng.lognormal(1.25, 0.45, n), 4),
                np.round(rng.uniform(1, 52, n)),
                rng.lognormal(1.6, 0.25, n),
                rng.lognormal(0.07, 0.1, n),
                np.round(rng.lognormal(7.0, 0.7, n)),
                rng.lognormal(1.0, 0.3, n),
                np.round(rng.uniform(32.5, 42, n), 2),
                np.round(rng.uniform(-124.3, -114.3, n), 2),
            ]
            out.write("\n".join(",".join(map(repr, row)) for row in np.column_stack(columns).tolist()) + "\n")


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
    """The image's /app: the stages modules the Dockerfile copies, compiled as its RUN line does
    (this checkout may run with PYTHONDONTWRITEBYTECODE, which would make every start compile them),
    with the models and metrics beside them."""
    copies = [line.split()[1:-1] for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("COPY stages/")]
    (app / "stages").mkdir(parents=True)
    for source in (s for line in copies for s in line):
        shutil.copy2(REPO / source, app / source)
    shutil.copytree(models_dir, app / "models", ignore=shutil.ignore_patterns("*.joblib"))
    (app / "metrics").mkdir()
    shutil.copy2(REPO / paths.EVALUATE_METRICS, app / "metrics")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(app / "stages")], check=True)


def predict_command(app: Path, model: str, source: Path, target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "housing_predictor",
        "--models-dir",
        str(app / "models"),
        "--metrics",
        str(app / "metrics" / "evaluate.json"),
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
    saved, linear = predict.load_linear(model, app / "models")
    spent = dict.fromkeys(("read + parse", "dot product", "format", "write"), 0.0)
    with open(source, "rb") as stream, open(target, "wb") as out:
        header = predict.read_header(stream, "input")
        order = predict.column_order(header, saved.features, "input")
        clock = time.perf_counter()
        for first_line, block in predict.iter_blocks(stream, "input"):
            X = predict.parse_rows(block, first_line, header, "input")[:, order]
            spent["read + parse"] += time.perf_counter() - clock
            clock = time.perf_counter()
            predictions = linear.predict(X)
            spent["dot product"] += time.perf_counter() - clock
            clock = time.perf_counter()
            text = predict.format_predictions(predictions)
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
        write_features_csv(big, args.rows)
        write_features_csv(small, 10_000, seed=1)
        write_features_csv(one, 1, seed=2)
        app = work / "app"
        stage_image_files(models_dir, app)
        mb = big.stat().st_size / 1e6
        print(
            f"input: {args.rows:,} rows, {mb:.1f} MB of CSV, 8 float columns; Python {sys.version.split()[0]}, "
            f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n"
        )

        single_thread = ["env", "OPENBLAS_NUM_THREADS=1", sys.executable, "-c", "import numpy"]
        cold = repeated(
            {
                "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
                "  the same, OPENBLAS_NUM_THREADS=1": single_thread,
                "predict, 1 row (q8)": predict_command(app, "q8", one, out),
                "import sklearn + joblib (published)": [sys.executable, "-c", "import sklearn.linear_model, joblib"],
            },
            repeat=max(args.repeat * 5, 10),
            cwd=app,
        )
        print("Cold start (s)                            best   median   predict / this (target <= 1.3): best, median")
        predict_times = [t for t, _ in cold["predict, 1 row (q8)"]]
        for name, runs in cold.items():
            times = [t for t, _ in runs]
            ratios = f"{min(predict_times) / min(times):.2f}  {statistics.median(predict_times) / statistics.median(times):.2f}"
            print(f"  {name:38s}{min(times):6.3f}  {statistics.median(times):6.3f}   {ratios}")
        print(
            "  (the predictor runs OpenBLAS single-threaded: its pool of threads costs start-up time, and a dot product\n"
            "   of 8 columns has no use for it)\n"
        )

        commands = {"numpy.loadtxt + numpy.savetxt": [sys.executable, "-c", BASELINE, str(big), str(out)]}
        commands |= {f"predict --model {m}": predict_command(app, m, big, out) for m in paths.MODEL_NAMES}
        runs = repeated(commands, args.repeat, cwd=app)
        baseline = min(t for t, _ in runs["numpy.loadtxt + numpy.savetxt"])
        print(f"Throughput, {args.rows:,} rows (s)          best   median  peak MiB   speed vs loadtxt+savetxt (target >= 1.4)")
        for name, measured in runs.items():
            times = [t for t, _ in measured]
            print(
                f"  {name:36s}{min(times):6.2f}  {statistics.median(times):6.2f}  {max(r for _, r in measured):8.1f}   "
                f"{baseline / min(times):.2f}x  ({mb / min(times):.0f} MB/s)"
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
        print("\nPeak RSS of predict (MiB; target <= 50, flat)")
        for name, measured in memory.items():
            print(f"  {name:36s}{measured[0][1]:6.1f}")

        before, after = runtime_size(work)
        print("\nRuntime dependencies (pip install --target, the image's steps; target <= 60 MB)")
        print(f"  requirements-runtime.txt as installed {before / 2**20:6.1f} MiB")
        print(f"  after scripts/prune_runtime.sh        {after / 2**20:6.1f} MiB")
        print(f"  scikit-learn + scipy + numpy + joblib {training_stack_bytes() / 2**20:6.1f} MiB (the published image's)")


if __name__ == "__main__":
    main()
