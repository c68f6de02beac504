"""Stages quantize-8 and quantize-16: one code path, the bit width an argument.

python -m stages.quantize --bits 8    # reads params quantize.q8, writes models/q8.safetensors
"""

from __future__ import annotations

import argparse

from housing_predictor import paths
from housing_predictor.errors import run_guarded
from housing_predictor.modelfile import load_model, save_model
from housing_predictor.quantization import dequantize_model, quantize_model
from stages import params
from stages.dataset import read_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, required=True, choices=[paths.MODEL_BITS[name] for name in paths.WEIGHT_ONLY_MODELS])
    bits = parser.parse_args().bits
    name = f"q{bits}"
    scheme = getattr(params.load().quantize, name)
    saved = load_model(paths.model_file("float"))
    train_X, _ = read_split(paths.TRAIN_CSV)
    tensors = quantize_model(dequantize_model(saved.tensors, "float"), train_X, bits, scheme)
    provenance = {**saved.params, "quantize": {name: scheme.model_dump()}}
    save_model(paths.model_file(name), tensors, scheme=scheme.scheme, bits=bits, features=saved.features, params=provenance)


if __name__ == "__main__":
    run_guarded(main)
