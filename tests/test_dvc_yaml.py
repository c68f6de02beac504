"""dvc.yaml tells the truth: each stage's deps are exactly the project modules it imports, all the
way down, and its outputs are the files the code writes (housing_predictor/paths.py); stage
validate guards every stage that reads params.yaml; the models the image ships are the registry's
artifacts. (That each stage keeps its run-cache, test_remote.py's run-cache journey shows.)"""

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


def outputs(stage: str) -> set[str]:
    """Every output of ``stage``, under outs:, metrics: or plots:."""
    entries = [entry for kind in ("outs", "metrics", "plots") for entry in DVC_YAML["stages"][stage].get(kind, [])]
    return {next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries}


def test_the_outputs_are_the_files_the_code_writes():
    assert outputs("validate") == {str(paths.PARAMS_STAMP)}
    assert outputs("load-data") == {str(paths.TRAIN_CSV), str(paths.TEST_CSV)}
    assert outputs("train") == {str(paths.SKLEARN_MODEL), str(paths.model_file("float")), str(paths.TRAIN_METRICS)}
    for name in paths.WEIGHT_ONLY_MODELS:
        assert outputs(f"quantize-{paths.MODEL_BITS[name]}") == {str(paths.model_file(name))}
    assert outputs("quantize-8int") == {str(paths.model_file(paths.INTEGER_MODEL))}
    assert outputs("export-onnx") == {str(paths.onnx_file(name)) for name in paths.MODELS}
    metrics = {str(paths.metrics_file(name)) for name in paths.MODELS}
    assert outputs("evaluate") == {*metrics, str(paths.SATURATION_METRICS), str(paths.SELFCHECK_CSV)}
    assert outputs("sweep") == {str(paths.SWEEP_METRICS), str(paths.SWEEP_PLOT)}
    assert outputs("report") == {
        str(paths.REPORT),
        str(paths.WEIGHTS_TABLE),
        *(str(paths.plot_file(name)) for name in ("float", *paths.WEIGHT_ONLY_MODELS)),
        *(str(paths.weights_plot_file(name)) for name in paths.WEIGHT_ONLY_MODELS),
    }


def test_validate_runs_on_all_of_params_yaml_before_every_stage_that_reads_it():
    assert str(paths.PARAMS) in DVC_YAML["stages"]["validate"]["deps"]
    readers = [name for name, stage in DVC_YAML["stages"].items() if stage.get("params")]
    assert readers  # the rule below holds for something
    for name in readers:
        assert str(paths.PARAMS_STAMP) in DVC_YAML["stages"][name]["deps"], f"{name} reads params.yaml but runs before validate"


def test_the_registry_declares_every_model_the_image_ships():
    dockerfile = (REPO / "Dockerfile").read_text()
    shipped = {path for line in dockerfile.splitlines() if line.startswith("COPY models/") for path in line.split()[1:-1]}
    shipped = {path for path in shipped if path.endswith(".safetensors")}
    assert shipped == {str(paths.model_file(name)) for name in paths.MODELS}
    artifacts = DVC_YAML["artifacts"]
    assert {artifact["path"] for artifact in artifacts.values()} == shipped
    for name, artifact in artifacts.items():  # test_remote.py gets each from the DVC remote
        assert artifact["type"] == "model" and artifact["desc"] and artifact["labels"], name
