"""Every third-party module the project's code imports is pinned with ``==`` in a requirements file,
and every one the image runs (housing_predictor/) in requirements-runtime.txt, the only file it installs.

The imports are read from the code with ``ast``; a module is mapped to the distribution that provides
it by the environment's own metadata (``importlib.metadata.packages_distributions``), so
``import sklearn`` needs a pin of scikit-learn and ``import yaml`` one of PyYAML. benchmarks/ is
scanned too, with benchmarks/requirements.txt counted for it alone: its baselines (pandas,
polars) are not the project's dependencies, but a benchmark's figures are only worth quoting if what
it imports is pinned somewhere.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

SCANNED = ["housing_predictor", "stages", "scripts", "tests", "benchmarks"]
# Names the project's own files provide: its packages, and modules its scripts and tests import
# from their own folder (conftest, scripts/results.py, ...).
LOCAL = {path.stem for folder in [REPO, *(REPO / name for name in SCANNED)] for path in folder.glob("*.py")} | {
    path.name for path in REPO.iterdir() if (path / "__init__.py").is_file()
}


def imported_modules(*folders: str) -> dict[str, set[str]]:
    """The top-level names of the absolute imports in ``folders``' Python files -> the files importing them."""
    modules: dict[str, set[str]] = {}
    for path in sorted(path for folder in folders for path in (REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.partition(".")[0], set()).add(str(path.relative_to(REPO)))
    return modules


def third_party(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: files for name, files in modules.items() if name not in sys.stdlib_module_names and name not in LOCAL}


def pinned(requirements: Path) -> set[str]:
    """The normalized names of the distributions ``requirements`` (and the files it includes with
    ``-r``) pins to one version with ``==``."""
    names: set[str] = set()
    for line in requirements.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option, _, argument = line.partition(" ")
        if option in ("-r", "--requirement"):
            names |= pinned(requirements.parent / argument.strip())
        elif not line.startswith("-"):
            requirement = Requirement(line)
            if any(spec.operator in ("==", "===") and "*" not in spec.version for spec in requirement.specifier):
                names.add(canonicalize_name(requirement.name))
    return names


def unpinned(modules: dict[str, set[str]], pins: set[str]) -> list[str]:
    """One line per module of ``modules`` that no distribution of ``pins`` provides."""
    providers = importlib.metadata.packages_distributions()
    # A module the environment does not know (a benchmark's optional baseline) is taken to be its
    # distribution's name. A namespace that several distributions share is pinned if one of them is.
    return [
        f"{name} (distribution {' or '.join(providers.get(name, [name]))}), imported by {', '.join(sorted(files))}"
        for name, files in sorted(modules.items())
        if not {canonicalize_name(distribution) for distribution in providers.get(name, [name])} & pins
    ]


def test_every_third_party_import_is_pinned():
    project_pins = set().union(*(pinned(path) for path in REPO.glob("requirements*.txt")))
    project = third_party(imported_modules(*(folder for folder in SCANNED if folder != "benchmarks")))
    benchmarks = third_party(imported_modules("benchmarks"))
    assert project and benchmarks, "the scan found no third-party import: it is broken"
    missing = unpinned(project, project_pins) + unpinned(benchmarks, project_pins | pinned(REPO / "benchmarks/requirements.txt"))
    assert not missing, "imported but not pinned with == in any requirements file:\n" + "\n".join(missing)


def test_what_the_image_runs_is_pinned_in_the_runtime_requirements():
    modules = third_party(imported_modules("housing_predictor"))
    assert modules, "the scan found no third-party import in housing_predictor/: it is broken"
    missing = unpinned(modules, pinned(REPO / "requirements-runtime.txt"))
    assert not missing, "imported by the image's code but not pinned in requirements-runtime.txt:\n" + "\n".join(missing)
