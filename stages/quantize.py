"""Stages quantize-8 and quantize-16: one code path, the bit width an argument.

python -m stages.quantize --bits 8    # reads params quantize.q8, writes models/q8.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from housing_predictor import paths
from housing_predictor.artifacts import load_model, save_model
from housing_predictor.errors import run_guarded
from housing_predictor.linear import LinearParams
from housing_predictor.quantization import MAX_BITS, MIN_BITS, dequantize_model, quantize_model
from stages.dataset import read_split
from stages.params import QuantizeParams, quantize_params


def quantized_tensors(model: LinearParams, train_X: np.ndarray, bits: int, params: QuantizeParams) -> dict[str, np.ndarray]:
    """``model`` quantized to ``bits`` as ``params`` say: the one code path of quantize-8/16 and sweep."""
    options = dataclasses.asdict(params)
    scheme = options.pop("scheme")
    if scheme != "affine":
        options = {}  # the published schemes are fixed arithmetic
    return quantize_model(model, train_X, bits=bits, scheme=scheme, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bits", type=int, required=True, choices=range(MIN_BITS, MAX_BITS + 1), metavar=f"{{{MIN_BITS}..{MAX_BITS}}}"
    )
    bits = parser.parse_args().bits
    name = f"q{bits}"
    params = quantize_params(name)
    saved = load_model(paths.model_file("float"))
    train_X, _ = read_split(paths.TRAIN_CSV)
    tensors = quantized_tensors(dequantize_model(saved.tensors, "float"), train_X, bits, params)
    provenance = {**saved.params, "quantize": {name: dataclasses.asdict(params)}}
    save_model(paths.model_file(name), tensors, scheme=params.scheme, bits=bits, features=saved.features, params=provenance)


if __name__ == "__main__":
    run_guarded(main)
