"""The ONNX graphs stage export-onnx wrote run in ONNX Runtime (CPU, default session options: what a
user gets) and give our predictor's numbers on the pipeline's test split: the float graph within
1e-6 relative, the weight-only graphs within float32 rounding, the integer graph's int8 codes and
int32 accumulators equal to housing_predictor/integer.py's bit for bit.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from housing_predictor import integer, paths
from housing_predictor.errors import PipelineError
from housing_predictor.linear import LinearParams
from housing_predictor.modelfile import SavedModel, load_model
from housing_predictor.quantization import dequantize_model, quantize_model
from stages import export_onnx, params
from stages.dataset import read_split

from conftest import REPO, affine, run

EPS32 = float(np.finfo(np.float32).eps)  # 2^-23: one float32 ulp at 1


class Exported(NamedTuple):
    X_test: np.ndarray
    float_model: LinearParams
    saved: dict[str, SavedModel]  # per model name, as the stages saved them
    graphs: dict[str, onnx.ModelProto]  # as stage export-onnx wrote them


@pytest.fixture(scope="module")
def exported(built) -> Exported:
    X_test, _ = read_split(built / paths.TEST_CSV)
    saved = {name: load_model(built / paths.model_file(name)) for name in paths.MODELS}
    graphs = {name: onnx.load(built / paths.onnx_file(name)) for name in paths.MODELS}
    return Exported(X_test, dequantize_model(saved["float"].tensors, "float"), saved, graphs)


def session(model: onnx.ModelProto, **options) -> ort.InferenceSession:
    session_options = ort.SessionOptions()
    for key, value in options.items():
        setattr(session_options, key, value)
    return ort.InferenceSession(export_onnx.checked_bytes(model), session_options, providers=["CPUExecutionProvider"])


def run_graph(model, X: np.ndarray, outputs: list[str] | None = None) -> list[np.ndarray]:
    return session(model).run(outputs, {export_onnx.INPUT: X})


def float32_bound(model: LinearParams, X: np.ndarray) -> np.ndarray:
    """Per row, what float32 arithmetic may move ``(X - m) / s @ w + b``: four float32 roundings
    (2^-24 relative each) of each term's largest intermediate, |w| (|X| + |m|) / s, and of the
    bias. Observed: under a tenth of this (the input's cast to float32 dominates)."""
    terms = np.abs(model.weight) * (np.abs(X) + np.abs(model.input_mean)) / model.input_scale
    return 2 * EPS32 * (terms.sum(axis=1) + abs(model.bias))


@pytest.mark.parametrize("name", paths.MODELS)
def test_export_is_deterministic_and_checked(built, exported, name):
    """Exporting the saved model again gives the bytes the stage wrote, in opset OPSET."""
    written = (built / paths.onnx_file(name)).read_bytes()
    assert export_onnx.checked_bytes(export_onnx.graph_for(name, exported.saved[name])) == written
    loaded = onnx.load_from_string(written)
    assert [(o.domain, o.version) for o in loaded.opset_import] == [("", export_onnx.OPSET)]
    assert loaded.producer_name == export_onnx.PRODUCER


def test_float_graph_matches_our_float_model(exported):
    (prediction,) = run_graph(exported.graphs["float"], exported.X_test)
    assert prediction.dtype == np.float64 and prediction.shape == (len(exported.X_test), 1)
    np.testing.assert_allclose(prediction[:, 0], exported.float_model.predict(exported.X_test), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", paths.WEIGHT_ONLY_MODELS)
def test_weight_only_graphs_match_ours_to_float32_rounding(exported, name):
    ours = dequantize_model(exported.saved[name].tensors, "affine")
    (prediction,) = run_graph(exported.graphs[name], exported.X_test)
    assert prediction.dtype == np.float32 and prediction.shape == (len(exported.X_test), 1)
    error = np.abs(prediction[:, 0].astype(np.float64) - ours.predict(exported.X_test))
    assert np.all(error <= float32_bound(ours, exported.X_test))
    # ...and float32 rounding is all it is: far below what quantization itself moves (q16: 9e-6 rms).
    assert error.max() < 1e-5


def test_weight_only_graph_without_a_scaler(exported):
    """train.standardize false: the graph has no Sub/Div, and still gives our predictions."""
    weight, bias = exported.float_model.folded()
    tensors = quantize_model(LinearParams(weight=weight, bias=bias), exported.X_test, 16, affine())
    graph = export_onnx.weight_only_graph(tensors, 16)
    assert "Sub" not in [node.op_type for node in graph.graph.node]
    (prediction,) = run_graph(graph, exported.X_test)
    ours = dequantize_model(tensors, "affine").predict(exported.X_test)
    np.testing.assert_allclose(prediction[:, 0], ours, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", paths.WEIGHT_ONLY_MODELS)
def test_runtime_optimizations_keep_the_weight_only_arithmetic(exported, name, tmp_path):
    """ONNX Runtime rewrites DequantizeLinear + MatMul with a 2-D weight into MatMulNBits, which
    quantizes the activations too; our 1-D weight keeps the dequantization and the float MatMul."""
    optimized = tmp_path / f"{name}.onnx"
    session(exported.graphs[name], optimized_model_filepath=str(optimized))
    operators = [node.op_type for node in onnx.load(optimized).graph.node]
    assert "MatMulNBits" not in operators and {"DequantizeLinear", "MatMul"} <= set(operators), operators


def test_integer_graph_is_bit_exact_with_our_integer_path(exported):
    tensors = exported.saved["q8int"].tensors
    graph = onnx.ModelProto()
    graph.CopyFrom(exported.graphs["q8int"])
    for name, dtype, shape in ((export_onnx.CODES, np.int8, ["n_rows", 8]), (export_onnx.ACCUMULATOR, np.int32, ["n_rows", 1])):
        graph.graph.output.append(onnx.helper.make_tensor_value_info(name, export_onnx._elem(dtype), shape))  # intermediates
    prediction, codes, accumulator = run_graph(graph, exported.X_test)
    our_codes = integer.quantize_inputs(
        exported.X_test, tensors["input_mean"], tensors["input_step"], tensors["input_zero_point"]
    )
    our_accumulator = integer.accumulate(our_codes, tensors["weight_q"], tensors["bias_q"])
    assert codes.dtype == np.int8 and np.array_equal(codes, our_codes)
    assert accumulator.dtype == np.int32 and np.array_equal(accumulator[:, 0], our_accumulator)
    # One float32 rescale of an exact integer (|accumulator| < 2^24, so its cast is exact).
    assert np.max(np.abs(accumulator)) < 2**24
    np.testing.assert_allclose(prediction[:, 0], integer.predict(tensors, exported.X_test), rtol=EPS32 / 2, atol=0)


def test_matmul_integer_equals_our_accumulation_on_extreme_codes(exported):
    """ONNX Runtime's MatMulInteger alone, on every corner of the int8 range: the same int32 sums."""
    from onnx import helper, numpy_helper

    weight_q = exported.saved["q8int"].tensors["weight_q"]
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["codes", "weight_q"], ["accumulator"])],
        "matmul_integer",
        [helper.make_tensor_value_info("codes", onnx.TensorProto.INT8, ["n_rows", 8])],
        [helper.make_tensor_value_info("accumulator", onnx.TensorProto.INT32, ["n_rows", 1])],
        initializer=[numpy_helper.from_array(weight_q.reshape(-1, 1), "weight_q")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", export_onnx.OPSET)], ir_version=export_onnx.IR_VERSION
    )
    extremes = [np.full(8, -128), np.full(8, 127), np.where(weight_q < 0, 127, -128)]  # the last: the most negative sum
    codes = np.concatenate([np.array(extremes), np.random.default_rng(15).integers(-128, 128, size=(1000, 8))]).astype(np.int8)
    (accumulator,) = session(model).run(None, {"codes": codes})
    assert accumulator.dtype == np.int32
    assert np.array_equal(accumulator[:, 0], integer.accumulate(codes, weight_q, np.zeros(1, np.int32)))


@pytest.mark.parametrize("scheme", ["published_a", "published_b"])
def test_published_schemes_export_as_the_model_they_dequantize_to(exported, scheme):
    """An experiment with q8 on a published scheme still exports: the float64 graph of what
    our predictor computes for that scheme. Their codes have no QDQ form of ours."""
    published = {"published_a": params.PublishedA, "published_b": params.PublishedB}[scheme](scheme=scheme)
    tensors = quantize_model(exported.float_model, exported.X_test, 8, published)
    with pytest.raises(PipelineError, match="only the affine scheme exports to ONNX in QDQ form"):
        export_onnx.weight_only_graph(tensors, 8)
    saved = SavedModel(tensors, scheme, 8, [f"f{i}" for i in range(8)], {}, 0)
    (prediction,) = run_graph(export_onnx.graph_for("q8", saved), exported.X_test)
    ours = dequantize_model(tensors, scheme).predict(exported.X_test)
    np.testing.assert_allclose(prediction[:, 0], ours, rtol=1e-6, atol=1e-9)


def test_invalid_graph_is_refused_in_one_line(exported):
    broken = onnx.ModelProto()
    broken.CopyFrom(exported.graphs["q8int"])
    broken.graph.node[2].input[0] = "no_such_value"
    with pytest.raises(PipelineError, match="ONNX graph q8int is invalid") as caught:
        export_onnx.checked_bytes(broken)
    assert "\n" not in str(caught.value)


def test_export_stage_with_a_missing_model_exits_2_and_writes_nothing(built, tmp_path):
    """One line naming the missing file; no graph is written, not even the ones that could be."""
    (tmp_path / "models").mkdir()
    for name in ("float", "q8", "q16"):  # q8int missing
        shutil.copy(built / paths.model_file(name), tmp_path / paths.model_file(name))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = run([sys.executable, "-m", "stages.export_onnx"], cwd=tmp_path, check=False, env=env)
    assert result.returncode == 2
    message = "error: model file models/q8int.safetensors is missing: run `dvc repro` (or `dvc pull`) to build it"
    assert result.stderr.strip() == message
    assert not list((tmp_path / "models").glob("*.onnx"))
