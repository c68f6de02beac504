"""The model file: a safetensors file (raw little-endian arrays and a JSON header, loaded without
running any code, unlike a pickle) whose metadata says what the tensors are and what built them.

The metadata is one key, ``housing-mlops``, holding canonical JSON (sorted keys): format, scheme,
bits, features, params (the params.yaml sections that built the model: its provenance) and a
sha256 of all of that and of every tensor. One key, because safetensors writes metadata in
hash-map order: with one key its own writer gives the same bytes on every run. The checksum is
verified on load, then the structure (``check_structure``), so a corrupted or re-signed file with
the wrong contents is refused by name instead of predicting garbage. numpy and safetensors only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from housing_predictor.errors import PipelineError
from housing_predictor.files import write_atomic
from housing_predictor.quantization import MAX_BITS, MIN_BITS

MODEL_FORMAT = "housing-mlops/linear-v2"
METADATA_KEY = "housing-mlops"
FLOAT_BITS = 64  # what the float model's file says


class SavedModel(NamedTuple):
    tensors: dict[str, np.ndarray]
    scheme: str  # 'float', a quantization scheme, or 'integer'
    bits: int  # FLOAT_BITS for the float model
    features: list[str]
    params: dict  # the params.yaml sections that produced it: its provenance
    file_bytes: int


def content_digest(tensors: dict[str, np.ndarray], header: dict) -> str:
    """sha256 over the header (but its own ``sha256``) and every tensor's name, dtype, shape and
    bytes, in name order."""
    digest = hashlib.sha256(_canonical({key: value for key, value in header.items() if key != "sha256"}))
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def save_model(path: Path, tensors: dict[str, np.ndarray], *, scheme: str, bits: int, features: list[str], params: dict) -> None:
    """Write the model file atomically; the same tensors and fields give the same bytes."""
    from safetensors.numpy import save

    header = {"format": MODEL_FORMAT, "scheme": scheme, "bits": bits, "features": list(features), "params": params}
    header["sha256"] = content_digest(tensors, header)
    write_atomic(path, save(tensors, metadata={METADATA_KEY: _canonical(header).decode()}))


def load_model(path: Path) -> SavedModel:
    """Load and verify a model file: its checksum, then its structure. Any problem is a one-line
    PipelineError naming the file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"model file {path} is missing: run `dvc repro` (or `dvc pull`) to build it") from None
    except OSError as error:
        raise PipelineError(f"model file {path} cannot be read: {error.strerror}") from None
    try:
        tensors = load(data)  # checks the header and every tensor's offsets against the file
        header = json.loads(_metadata(data).get(METADATA_KEY, "null"))
    except (SafetensorError, ValueError, RecursionError) as error:
        raise PipelineError(f"model file {path} is corrupted (not a readable safetensors file: {error})") from None
    if not isinstance(header, dict) or header.get("format") != MODEL_FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise PipelineError(f"model file {path} is not a {MODEL_FORMAT} file (format {found!r})")
    if header.get("sha256") != content_digest(tensors, header):
        raise PipelineError(f"model file {path} is corrupted: its contents do not match the checksum it was saved with")
    try:
        saved = _saved_model(tensors, header, len(data))
        check_structure(saved)
    except ValueError as error:
        raise PipelineError(f"model file {path} is invalid: {error}") from None
    return saved


def _metadata(data: bytes) -> dict:
    """The ``__metadata__`` of safetensors bytes that ``load`` accepted (so the header is sound):
    safetensors reads metadata from files only (``safe_open``), we have the bytes."""
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length]).get("__metadata__") or {}


FIELD_TYPES = {"scheme": str, "bits": int, "features": list, "params": dict}


def _saved_model(tensors: dict[str, np.ndarray], header: dict, file_bytes: int) -> SavedModel:
    """The header's fields; ValueError names the first one that is missing or of the wrong type."""
    for key, kind in FIELD_TYPES.items():
        if key not in header:
            raise ValueError(f"its metadata has no {key!r}")
        if not isinstance(header[key], kind) or isinstance(header[key], bool):
            raise ValueError(f"its metadata {key!r} is malformed: {json.dumps(header[key])[:40]}")
    return SavedModel(tensors=tensors, file_bytes=file_bytes, **{key: header[key] for key in FIELD_TYPES})


# Each scheme's tensors, as (kind, length): "real" float32/float64 finite numbers, "scale" the same
# and positive, "code" integers in the storage type of the file's bit width (int8/uint8 up to
# 8 bits, int16/uint16 up to 16) and within its range, "int32" int32. A length of None is one per
# feature (the file's features; which features a model must read is the loader's business).
PER_FEATURE = None
TENSOR_LAYOUTS = {
    "float": {"weight": ("real", PER_FEATURE), "bias": ("real", 1)},
    "affine": {
        "weight_q": ("code", PER_FEATURE),
        "weight_scale": ("scale", 1),
        "weight_zero_point": ("code", 1),
        "bias": ("real", 1),
    },
    "published_a": {
        "weight_q": ("code", PER_FEATURE),
        "weight_scale": ("scale", 1),
        "bias_q": ("code", 1),
        "bias_scale": ("scale", 1),
    },
    "published_b": {
        "weight_q": ("code", PER_FEATURE),
        "weight_multiplier": ("scale", 1),
        "weight_min": ("real", 1),
        "bias_q": ("code", 1),
        "bias_multiplier": ("scale", 1),
        "bias_min": ("real", 1),
    },
    # Integer-only inference (housing_predictor/integer.py): int8 input grids and weights, the bias
    # as an int32 accumulator term, one float rescale.
    "integer": {
        "input_mean": ("real", PER_FEATURE),
        "input_step": ("scale", PER_FEATURE),
        "input_zero_point": ("code", PER_FEATURE),
        "weight_q": ("code", PER_FEATURE),
        "bias_q": ("int32", 1),
        "output_scale": ("scale", 1),
    },
}
# The optional standard scaler (both tensors or neither), for the schemes that keep one.
SCALER_LAYOUT = {"input_mean": ("real", PER_FEATURE), "input_scale": ("scale", PER_FEATURE)}
SCALER_SCHEMES = ("float", "affine")


def check_structure(saved: SavedModel) -> None:
    """What the predictor relies on, beyond the checksum: known scheme, consistent bits, features
    named once each, and exactly the scheme's tensors with the right dtypes, shapes (one weight per
    feature) and values. Raises ValueError naming the first problem."""
    if saved.scheme not in TENSOR_LAYOUTS:
        raise ValueError(f"unknown scheme {saved.scheme!r} (known: {', '.join(TENSOR_LAYOUTS)})")
    if saved.scheme == "float" and saved.bits != FLOAT_BITS:
        raise ValueError(f"scheme float with bits {saved.bits}, expected {FLOAT_BITS}")
    if saved.scheme != "float" and not MIN_BITS <= saved.bits <= MAX_BITS:
        raise ValueError(f"bits {saved.bits}, expected {MIN_BITS} to {MAX_BITS} for scheme {saved.scheme}")
    if not saved.features or not all(isinstance(name, str) and name for name in saved.features):
        raise ValueError(f"features must be a list of names, found {json.dumps(saved.features)[:60]}")
    if len(set(saved.features)) != len(saved.features):
        raise ValueError(f"features must be named once each, found {', '.join(saved.features)[:200]}")
    layout = dict(TENSOR_LAYOUTS[saved.scheme])
    if saved.scheme in SCALER_SCHEMES and any(name in saved.tensors for name in SCALER_LAYOUT):
        layout |= SCALER_LAYOUT
    if set(layout) != set(saved.tensors):
        found = ", ".join(sorted(saved.tensors)) or "none"
        raise ValueError(f"scheme {saved.scheme} needs tensors {', '.join(layout)}; found {found}")
    for name, (kind, length) in layout.items():
        _check_tensor(name, saved.tensors[name], kind, len(saved.features) if length is PER_FEATURE else length, saved.bits)


def _check_tensor(name: str, values: np.ndarray, kind: str, length: int, bits: int) -> None:
    if values.shape != (length,):
        raise ValueError(f"tensor {name} has shape {values.shape}, expected ({length},)")
    if kind == "code":
        allowed = ("int8", "uint8") if bits <= 8 else ("int16", "uint16")
        if values.dtype.name not in allowed:
            raise ValueError(f"tensor {name} is {values.dtype.name}, expected {' or '.join(allowed)} for {bits}-bit codes")
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if values.dtype.kind == "i" else (0, 2**bits - 1)
        if values.min() < low or values.max() > high:
            raise ValueError(f"tensor {name} holds codes outside [{low}, {high}], the range of {bits}-bit codes")
        return
    if kind == "int32":
        if values.dtype.name != "int32":
            raise ValueError(f"tensor {name} is {values.dtype.name}, expected int32")
        return
    if values.dtype.name not in ("float32", "float64"):
        raise ValueError(f"tensor {name} is {values.dtype.name}, expected float32 or float64")
    if not np.isfinite(values).all():
        raise ValueError(f"tensor {name} holds {values[~np.isfinite(values)][0]}, expected finite numbers")
    if kind == "scale" and not (values > 0).all():
        raise ValueError(f"tensor {name} holds {values[~(values > 0)][0]}, expected positive numbers")
