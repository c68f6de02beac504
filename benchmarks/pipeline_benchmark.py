"""Pipeline speed, measured: cold `dvc repro`, no-op `dvc repro`, what a quantize param re-runs,
and the sweep's compute.

    python benchmarks/pipeline_benchmark.py [--repeats 3]

Targets: a cold repro of every stage <= 7 s (set when there were six stages); a no-op repro <=
1.2x the no-op repro of a one-stage pipeline; changing only a quantize param re-runs only that
quantize stage and the stages that read its model; the sweep's compute (every model of the sweep
quantized and scored, without Python's start-up, imports and file reading) <= 1 s. Prints
figures; asserts nothing (times depend on the machine and its load).
Needs the project's venv on PATH (source scripts/env.sh); the data comes from scikit-learn's folder.
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

import yaml

REPO = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]
# Each stage's command, as dvc.yaml runs it (a new stage is measured without an edit here).
STAGE_COMMANDS = {name: stage["cmd"] for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items()}
# The sweep's compute alone, in a built clone: inputs loaded first, then sweep() timed.
SWEEP_COMPUTE = """
import time
from housing_predictor import paths
from housing_predictor.modelfile import load_model
from housing_predictor.quantization import dequantize_model
from stages.dataset import read_split
from stages import params
from stages.sweep import sweep
import sklearn.metrics  # imported by the stage anyway; not part of the compute

study = params.load().sweep
model = dequantize_model(load_model(paths.model_file("float")).tensors, "float")
train_X, _ = read_split(paths.TRAIN_CSV)
test_X, test_y = read_split(paths.TEST_CSV)
start = time.perf_counter()
figures = sweep(model, train_X, test_X, test_y, study.schemes, range(study.min_bits, study.max_bits + 1))
print(time.perf_counter() - start, sum(map(len, figures.values())))
"""


def sh(args, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, **kwargs)


def timed(args, cwd: Path, **kwargs) -> tuple[float, str]:
    start = time.perf_counter()
    result = sh(args, cwd, **kwargs)
    return time.perf_counter() - start, result.stdout


def fresh_clone(parent: Path) -> Path:
    """What a user gets from `git clone` of the committed work tree: no data, no models."""
    target = parent / f"clone{len(list(parent.iterdir()))}"
    sh(["git", "clone", "-q", str(REPO), str(target)], parent)
    return target


def one_stage_repo(parent: Path) -> Path:
    repo = parent / "one-stage"
    repo.mkdir()
    sh(["git", "init", "-q"], repo)
    sh([*DVC, "init", "-q"], repo)
    sh([*DVC, "stage", "add", "-q", "-n", "one", "-o", "out.txt", "echo hi > out.txt"], repo)
    sh([*DVC, "repro", "-q"], repo)
    return repo


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        baseline = one_stage_repo(scratch)
        one_stage_noop = statistics.median(timed([*DVC, "repro"], baseline)[0] for _ in range(max(5, repeats)))

        # A fresh clone's `dvc repro` runs every stage with an output that is not in git; a stage
        # whose outputs are all in git (cache: false) and whose inputs come back bit for bit is
        # skipped. `dvc repro -f` on another fresh clone runs them all: the "cold repro of every stage".
        cold, cold_all = [], []
        for _ in range(repeats):
            clone = fresh_clone(scratch)
            seconds, output = timed([*DVC, "repro", "-f"], clone)
            assert stages_run(output) == list(STAGE_COMMANDS), output
            cold_all.append(seconds)
            shutil.rmtree(clone)
            clone = fresh_clone(scratch)
            seconds, output = timed([*DVC, "repro"], clone)
            skipped = [stage for stage in STAGE_COMMANDS if stage not in stages_run(output)]
            cold.append(seconds)
        noop = statistics.median(timed([*DVC, "repro"], clone)[0] for _ in range(max(5, repeats)))
        clean = sh(["git", "status", "--porcelain"], clone).stdout == ""

        sweep_runs = [sh([sys.executable, "-c", SWEEP_COMPUTE], clone).stdout.split() for _ in range(repeats)]
        sweep_seconds = statistics.median(float(seconds) for seconds, _ in sweep_runs)
        sweep_models = int(sweep_runs[0][1])

        per_stage = {}
        for stage, command in STAGE_COMMANDS.items():
            per_stage[stage] = statistics.median(timed(command.split(), clone)[0] for _ in range(repeats))

        params = clone / "params.yaml"
        original = params.read_text()
        params.write_text(original.replace("    scale_search: mse", "    scale_search: none", 1))  # q8's
        assert params.read_text() != original, "params.yaml layout changed: update the benchmark's edit"
        param_seconds, output = timed([*DVC, "repro"], clone)
        rerun = stages_run(output)
        params.write_text(original)
        shutil.rmtree(clone)

    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(f"{'measure':52} {'figure':>10}  target")
    print(
        f"{f'cold dvc repro -f, all {len(STAGE_COMMANDS)} stages (median of ' + str(repeats) + ')':52} {statistics.median(cold_all):9.2f}s  <= 7 s"
    )
    print(f"{'  min / max':52} {min(cold_all):5.2f}/{max(cold_all):.2f}s")
    fresh = f"cold dvc repro, fresh clone ({' and '.join(skipped)} up to date)"
    print(f"{fresh:52} {statistics.median(cold):9.2f}s")
    print(f"{'  min / max':52} {min(cold):5.2f}/{max(cold):.2f}s")
    print(f"{'no-op dvc repro, one-stage pipeline (median)':52} {one_stage_noop:9.2f}s")
    print(f"{'no-op dvc repro, this pipeline (median)':52} {noop:9.2f}s  <= {1.2 * one_stage_noop:.2f} s (1.2x)")
    print(f"{'  ratio':52} {noop / one_stage_noop:9.2f}x")
    print(f"{'committed dvc.lock and metrics/ reproduced':52} {str(clean):>10}")
    print(f"{'quantize.q8 param changed: stages re-run':52} {', '.join(rerun)}")
    print(f"{'  time':52} {param_seconds:9.2f}s")
    print(f"{f'sweep compute, {sweep_models} models (median)':52} {sweep_seconds:9.2f}s  <= 1 s")
    print("each stage's command alone (median; Python start-up and imports included):")
    for stage, seconds in per_stage.items():
        print(f"  {stage:50} {seconds:9.2f}s")
    print(f"  {'sum':50} {sum(per_stage.values()):9.2f}s")


if __name__ == "__main__":
    main()
