"""dvc.yaml tells the truth: each stage's deps are exactly the project modules it imports, all the
way down, and its outs are the files the code writes (housing_predictor/paths.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from housing_predictor import paths

from conftest import REPO

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
PACKAGES = ("stages", "housing_predictor")


def module_file(module: str) -> Path:
    path = REPO.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def import_closure(module: str) -> set[str]:
    """The project files that `python -m MODULE` runs: the module, every project module it imports
    (at the top or inside a function), theirs, and the packages that hold each."""
    seen, todo = set(), [module]
    while todo:
        parts = todo.pop().split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            path = module_file(".".join(parts[:depth]))
            if not path.exists() or path in seen:
                continue
            seen.add(path)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    todo += [alias.name for alias in node.names if alias.name.split(".")[0] in PACKAGES]
                elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    todo += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return {str(path.relative_to(REPO)) for path in seen}


@pytest.mark.parametrize("stage", DVC_YAML["stages"])
def test_a_stages_code_deps_are_its_import_closure(stage):
    entry = DVC_YAML["stages"][stage]
    module = entry["cmd"].split()[2]  # python -m MODULE ...
    listed = {dep for dep in entry["deps"] if dep.endswith(".py")}
    closure = import_closure(module)
    assert not closure - listed, f"{stage} imports {sorted(closure - listed)}, missing from its deps in dvc.yaml"
    assert not listed - closure, f"{stage} lists {sorted(listed - closure)} in its deps, which it never imports"


def test_the_outs_are_the_files_the_code_writes():
    def outs(stage: str) -> set[str]:
        return {next(iter(out)) if isinstance(out, dict) else out for out in DVC_YAML["stages"][stage]["outs"]}

    assert outs("load-data") == {str(paths.TRAIN_CSV), str(paths.TEST_CSV)}
    assert outs("train") == {str(paths.SKLEARN_MODEL), str(paths.model_file("float")), str(paths.TRAIN_METRICS)}
    for name in paths.WEIGHT_ONLY_MODELS:
        assert outs(f"quantize-{paths.MODEL_BITS[name]}") == {str(paths.model_file(name))}
    assert outs("quantize-8int") == {str(paths.model_file(paths.INTEGER_MODEL))}
    assert outs("export-onnx") == {str(paths.onnx_file(name)) for name in paths.MODELS}
    assert outs("evaluate") == {
        str(paths.EVALUATE_METRICS),
        str(paths.WEIGHTS_TABLE),
        str(paths.SELFCHECK_CSV),
        *(str(paths.plot_file(name)) for name in ("float", *paths.WEIGHT_ONLY_MODELS)),
        *(str(paths.weights_plot_file(name)) for name in paths.WEIGHT_ONLY_MODELS),
    }
    assert outs("sweep") == {str(paths.SWEEP_METRICS), str(paths.SWEEP_PLOT)}
    assert outs("report") == {str(paths.REPORT)}
