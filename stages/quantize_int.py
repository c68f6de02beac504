"""Stage quantize-8int: the integer-only 8-bit model (housing_predictor/integer.py).

python -m stages.quantize_int    # reads params quantize.q8int, writes models/q8int.safetensors

int8 inputs (grids calibrated on the training split), int8 weights, int32 bias and accumulator,
one rescale to float: what an integer engine runs. Evaluated by `evaluate` beside the others,
exported to ONNX (MatMulInteger) by `export-onnx`.
"""

from __future__ import annotations

from housing_predictor import paths
from housing_predictor.errors import run_guarded
from housing_predictor.integer import quantize_integer
from housing_predictor.modelfile import load_model, save_model
from housing_predictor.quantization import dequantize_model
from stages import params
from stages.dataset import read_split


def main() -> None:
    options = params.load().quantize.q8int
    saved = load_model(paths.model_file("float"))
    train_X, _ = read_split(paths.TRAIN_CSV)
    tensors = quantize_integer(dequantize_model(saved.tensors, "float"), train_X, options)
    provenance = {**saved.params, "quantize": {paths.INTEGER_MODEL: options.model_dump()}}
    bits = paths.MODEL_BITS[paths.INTEGER_MODEL]
    save_model(
        paths.model_file(paths.INTEGER_MODEL), tensors, scheme="integer", bits=bits, features=saved.features, params=provenance
    )


if __name__ == "__main__":
    run_guarded(main)
