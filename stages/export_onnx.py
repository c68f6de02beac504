"""Stage export-onnx: every model as an ONNX graph that ONNX Runtime (or any ONNX engine) runs.

python -m stages.export_onnx    # writes models/float.onnx, q8.onnx, q16.onnx, q8int.onnx

Each graph takes ``features`` (n_rows, 8) float64, in the float model's feature order (numpy's
default dtype, what a CSV reads as), and returns ``prediction`` (n_rows, 1) in $100,000, float64
from the float graph (and from a published scheme's, ``graph_for``) and float32 from the others,
which cast their input to float32 first:

- float: float64 ``Sub``, ``Div`` (the scaler, explicit), ``MatMul``, ``Add``: our float model.
- q8, q16 (weight-only): float32; the int8/int16 weight codes go through ``DequantizeLinear``
  (QDQ form; int16 needs opset 21), then the same ops as the float graph.
- q8int (integer-only): ``Sub`` (the scaler's shift), ``QuantizeLinear`` per feature to int8,
  ``MatMulInteger`` (int8 x int8 -> int32), ``Add`` of the int32 bias, ``Cast`` and one ``Mul``:
  the arithmetic of housing_predictor/integer.py, whose accumulator it reproduces bit for bit.

Deterministic: no timestamps or random names, protobuf serialized deterministically, so a repro
writes the same bytes. onnx is imported here only: the predictor image never needs it.
"""

from __future__ import annotations

import numpy as np

from housing_predictor import paths
from housing_predictor.errors import PipelineError, run_guarded
from housing_predictor.files import write_atomic
from housing_predictor.modelfile import SavedModel, load_model
from housing_predictor.quantization import dequantize_model, float_tensors

OPSET = 21  # int16 QuantizeLinear/DequantizeLinear need 21
IR_VERSION = 10  # the IR of opset 21 (ONNX 1.16): what runtimes of that generation load
PRODUCER = "housing-mlops"
INPUT, OUTPUT = "features", "prediction"
INPUT_FLOAT32 = "features_float32"
# q8int's int8 input codes and int32 accumulator (bias included), named for tests and users
CODES, ACCUMULATOR = "codes", "accumulator"


def _elem(dtype) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _graph(nodes, initializers: dict[str, np.ndarray], dtype, name: str, doc: str, n_features: int):
    """A model of ``nodes``: float64 ``features`` in; ``prediction`` out in ``dtype``, which is
    what the graph computes in (a float32 graph starts with a Cast of its input, ``_float32_input``)."""
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT, _elem(np.float64), ["n_rows", n_features])],
        [helper.make_tensor_value_info(OUTPUT, _elem(dtype), ["n_rows", 1])],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(v), name=k) for k, v in initializers.items()],
        doc_string=doc,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER, ir_version=IR_VERSION, doc_string=doc
    )
    return model


def _float32_input():
    from onnx import helper

    return helper.make_node("Cast", [INPUT], [INPUT_FLOAT32], to=_elem(np.float32))


def _linear_nodes(weight: str, source: str = INPUT, standardize: bool = True) -> list:
    """(features - mean) / scale @ weight + bias: the scaler explicit, as in our float model
    (without ``standardize``, features @ weight + bias).

    The weight is 1-D (n_features,) and the product is unsqueezed to (n_rows, 1) after: given a
    2-D DequantizeLinear weight, ONNX Runtime's default optimizations (ORT_ENABLE_EXTENDED and up)
    rewrite DequantizeLinear + MatMul into MatMulNBits, which quantizes the activations to int8
    too and moved q8's predictions by up to 0.2 on the test split (onnxruntime 1.31.1). That
    fusion takes 2-D weights only; tests/test_onnx.py checks the optimized graph keeps our ops.
    """
    from onnx import helper

    nodes = []
    if standardize:
        nodes += [
            helper.make_node("Sub", [source, "input_mean"], ["centered"]),
            helper.make_node("Div", ["centered", "input_scale"], ["standardized"]),
        ]
        source = "standardized"
    return [
        *nodes,
        helper.make_node("MatMul", [source, weight], ["product"]),
        helper.make_node("Unsqueeze", ["product", "output_axes"], ["column"]),
        helper.make_node("Add", ["column", "bias"], [OUTPUT]),
    ]


def float_graph(tensors: dict[str, np.ndarray], dtype=np.float64):
    """The float model (StandardScaler + LinearRegression, or LinearRegression alone when it has
    no scaler) in ``dtype`` (float64: ours exactly; float32: what ONNX Runtime's quantizers take)."""
    standardize = "input_mean" in tensors
    initializers = {"weight": tensors["weight"].astype(dtype), "bias": tensors["bias"].astype(dtype)}
    if standardize:
        initializers["input_mean"] = tensors["input_mean"].astype(dtype)
        initializers["input_scale"] = tensors["input_scale"].astype(dtype)
    initializers["output_axes"] = np.array([1], dtype=np.int64)
    if dtype == np.float64:
        nodes = _linear_nodes("weight", INPUT, standardize)
    else:
        nodes = [_float32_input(), *_linear_nodes("weight", INPUT_FLOAT32, standardize)]
    doc = "StandardScaler + LinearRegression" if standardize else "LinearRegression"
    return _graph(nodes, initializers, dtype, "float", doc, len(tensors["weight"]))


def weight_only_graph(tensors: dict[str, np.ndarray], bits: int):
    """A weight-only quantized model (scheme affine) in QDQ form: DequantizeLinear of the codes,
    then float32 arithmetic, as our predictor does in float64."""
    from onnx import helper

    if "weight_zero_point" not in tensors:
        raise PipelineError(f"q{bits}: only the affine scheme exports to ONNX in QDQ form")
    standardize = "input_mean" in tensors
    initializers = {
        "weight_q": tensors["weight_q"],
        "weight_scale": tensors["weight_scale"].reshape(()),
        "weight_zero_point": tensors["weight_zero_point"].reshape(()),
        "bias": tensors["bias"],
        "output_axes": np.array([1], dtype=np.int64),
    }
    if standardize:
        initializers["input_mean"], initializers["input_scale"] = tensors["input_mean"], tensors["input_scale"]
    dequantize = helper.make_node("DequantizeLinear", ["weight_q", "weight_scale", "weight_zero_point"], ["weight"])
    n = len(tensors["weight_q"])
    doc = f"{'StandardScaler + ' if standardize else ''}LinearRegression, weights quantized to {bits} bits (weight-only, QDQ)"
    nodes = [_float32_input(), dequantize, *_linear_nodes("weight", INPUT_FLOAT32, standardize)]
    return _graph(nodes, initializers, np.float32, f"q{bits}", doc, n)


def integer_graph(tensors: dict[str, np.ndarray]):
    """The integer-only model (housing_predictor/integer.py): int8 inputs and weights, int32 accumulator."""
    from onnx import helper

    initializers = {
        "input_mean": tensors["input_mean"],
        "input_step": tensors["input_step"],
        "input_zero_point": tensors["input_zero_point"],
        "weight_q": tensors["weight_q"].reshape(-1, 1),
        "bias_q": tensors["bias_q"],
        "output_scale": tensors["output_scale"],
    }
    nodes = [
        _float32_input(),
        helper.make_node("Sub", [INPUT_FLOAT32, "input_mean"], ["centered"]),
        helper.make_node("QuantizeLinear", ["centered", "input_step", "input_zero_point"], [CODES], axis=1),
        helper.make_node("MatMulInteger", [CODES, "weight_q"], ["product"]),
        helper.make_node("Add", ["product", "bias_q"], [ACCUMULATOR]),
        helper.make_node("Cast", [ACCUMULATOR], ["accumulator_float"], to=_elem(np.float32)),
        helper.make_node("Mul", ["accumulator_float", "output_scale"], [OUTPUT]),
    ]
    n = len(tensors["weight_q"])
    doc = "StandardScaler + LinearRegression, integer-only: int8 inputs and weights, int32 accumulation (Jacob et al. 2018)"
    return _graph(nodes, initializers, np.float32, "q8int", doc, n)


def graph_for(name: str, saved: SavedModel):
    if name == "float":
        return float_graph(saved.tensors)
    if name == paths.INTEGER_MODEL:
        return integer_graph(saved.tensors)
    if saved.scheme != "affine":
        # The published write-ups' schemes (`dvc exp run -S '~quantize.q8' -S '+quantize.q8={scheme:
        # published_b}'`, docs/quantization.md) exist to show how they fail: their graph is the float64 model they dequantize to, what our
        # predictor computes for them, so ONNX Runtime still gives our predictions.
        return float_graph(float_tensors(dequantize_model(saved.tensors, saved.scheme)))
    return weight_only_graph(saved.tensors, saved.bits)


def checked_bytes(model) -> bytes:
    """The model's bytes after onnx.checker's full check (with shape inference); the same bytes
    for the same model (deterministic protobuf serialization)."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as error:
        raise PipelineError(f"ONNX graph {model.graph.name} is invalid: {str(error).splitlines()[0]}") from None
    return model.SerializeToString(deterministic=True)


def export(name: str, models_dir=paths.MODELS_DIR) -> bytes:
    """The checked ONNX bytes of model ``name``, from its safetensors file."""
    return checked_bytes(graph_for(name, load_model(paths.model_file(name, models_dir))))


def main() -> None:
    graphs = {name: export(name) for name in paths.MODELS}  # all checked before any is written
    for name, data in graphs.items():
        write_atomic(paths.onnx_file(name), data)


if __name__ == "__main__":
    run_guarded(main)
