"""Reading and writing the pipeline's files: atomic writes, JSON metrics, safe model files.

Models are safetensors files (a JSON header and raw little-endian arrays, loaded without running
any code, unlike a pickle). Each carries a sha256 of its tensors in its metadata, checked on load,
so a corrupted file is refused by name instead of predicting garbage. numpy and safetensors only:
the predictor image imports this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from housing_predictor.errors import PipelineError

MODEL_FORMAT = "housing-mlops/linear-v1"


@contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only if the ``with`` block succeeds: written to a temp
    file beside it, then renamed. A reader (or a crash) never sees a half-written file, and what
    was there survives a failed write. The new file gets the usual mode (umask), not mkstemp's 0600.
    """
    import tempfile  # here, not at the top: the predictor's start-up rarely needs it

    path = Path(path)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp:
            yield temp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (creating its folder) through ``replacing``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temp:
        temp.write(data)


def write_json(path: Path, document: dict) -> None:
    """Indented JSON, keys in the order given, trailing newline: diffs cleanly in git.

    NaN and infinity are refused (JSON has no such numbers; json.dumps would write bare `NaN`)."""
    try:
        text = json.dumps(document, indent=2, allow_nan=False)
    except ValueError:
        raise PipelineError(f"{path}: not written, {', '.join(_non_finite_keys(document))} is not a finite number") from None
    write_atomic(path, (text + "\n").encode())


def _non_finite_keys(node, prefix: str = "") -> list[str]:
    """The dotted keys of the NaN or infinite floats in a JSON-like document."""
    if isinstance(node, float):
        return [] if math.isfinite(node) else [prefix or "the document"]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return [key for name, child in items for key in _non_finite_keys(child, f"{prefix}.{name}" if prefix else str(name))]


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"{what} {path} is missing: run `dvc repro`") from None
    except (OSError, ValueError) as error:
        raise PipelineError(f"{what} {path} is unreadable or not JSON: {error}") from None


def content_digest(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """sha256 over the metadata (but its own ``sha256``) and every tensor's name, dtype, shape and
    bytes, in name order."""
    digest = hashlib.sha256()
    digest.update(json.dumps({k: v for k, v in metadata.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class SavedModel(NamedTuple):
    tensors: dict[str, np.ndarray]
    scheme: str  # 'float' or a quantization scheme
    bits: int  # 64 for the float model
    features: list[str]
    params: dict  # the params.yaml sections that produced it: its provenance
    file_bytes: int


def save_model(path: Path, tensors: dict[str, np.ndarray], *, scheme: str, bits: int, features: list[str], params: dict) -> None:
    metadata = {
        "format": MODEL_FORMAT,
        "scheme": scheme,
        "bits": str(bits),
        "features": json.dumps(list(features)),
        "params": json.dumps(params, sort_keys=True),
    }
    metadata["sha256"] = content_digest(tensors, metadata)
    write_atomic(path, safetensors_bytes(tensors, metadata))


_SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "int8": "I8",
    "uint8": "U8",
    "int16": "I16",
    "uint16": "U16",
    "int32": "I32",
}


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file with its header's keys sorted.

    safetensors' own writer emits the metadata in hash-map order, different on every run, which
    would change the file's md5 in dvc.lock on every `dvc repro`. The format is simple enough to
    write deterministically (little-endian arrays in name order, a JSON header padded to 8
    bytes); safetensors' loader reads it back and tests/test_artifacts.py checks that it does.
    """
    header: dict = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def load_model(path: Path) -> SavedModel:
    """Load and verify a model file: its checksum, then its structure (``check_structure``), so that a
    file re-signed with a valid checksum but the wrong contents is refused too. Any problem is a
    one-line PipelineError naming the file."""
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
        metadata = _header_metadata(data)
        tensors = load(data)
    except (SafetensorError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise PipelineError(f"model file {path} is corrupted (not a readable safetensors file: {error})") from None
    if metadata.get("format") != MODEL_FORMAT:
        raise PipelineError(f"model file {path} is not a {MODEL_FORMAT} file (format {metadata.get('format')!r})")
    if metadata.get("sha256") != content_digest(tensors, metadata):
        raise PipelineError(f"model file {path} is corrupted: its contents do not match the checksum it was saved with")
    try:
        saved = _saved_model(tensors, metadata, len(data))
        check_structure(saved)
    except ValueError as error:
        raise PipelineError(f"model file {path} is invalid: {error}") from None
    return saved


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file: an 8-byte little-endian length, then JSON."""
    if len(data) < 8:
        raise ValueError("file shorter than its header")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        raise ValueError("header longer than the file")
    header = json.loads(data[8 : 8 + length])
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise ValueError("no metadata")
    return header["__metadata__"]


def _saved_model(tensors: dict[str, np.ndarray], metadata: dict[str, str], file_bytes: int) -> SavedModel:
    """The metadata's fields, parsed; ValueError names the first one that is missing or malformed."""
    fields = {}
    for key, parse in (("scheme", str), ("bits", int), ("features", json.loads), ("params", json.loads)):
        if key not in metadata:
            raise ValueError(f"its metadata has no {key!r}")
        try:
            fields[key] = parse(metadata[key])
        except (ValueError, RecursionError):
            raise ValueError(f"its metadata {key!r} is malformed: {metadata[key][:40]!r}") from None
    if not isinstance(fields["params"], dict):
        raise ValueError("its metadata 'params' is not a JSON object")
    return SavedModel(tensors=tensors, file_bytes=file_bytes, **fields)


# Each scheme's tensors, as (kind, length): "real" float32/float64 finite numbers, "scale" the same
# and positive, "code" integers in the storage type of the file's bit width (int8/uint8 up to
# 8 bits, int16/uint16 up to 16) and within its range. A length of None is one per feature (the
# file's features; which features a model must read is the predictor's business).
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
FLOAT_BITS = 64
MIN_CODE_BITS, MAX_CODE_BITS = 2, 16


def check_structure(saved: SavedModel) -> None:
    """What the predictor relies on, beyond the checksum: known scheme, consistent bits, features
    named once each, and exactly the scheme's tensors with the right dtypes, shapes (one weight per
    feature) and values. Raises ValueError naming the first problem."""
    if saved.scheme not in TENSOR_LAYOUTS:
        raise ValueError(f"unknown scheme {saved.scheme!r} (known: {', '.join(TENSOR_LAYOUTS)})")
    if saved.scheme == "float" and saved.bits != FLOAT_BITS:
        raise ValueError(f"scheme float with bits {saved.bits}, expected {FLOAT_BITS}")
    if saved.scheme != "float" and not MIN_CODE_BITS <= saved.bits <= MAX_CODE_BITS:
        raise ValueError(f"bits {saved.bits}, expected {MIN_CODE_BITS} to {MAX_CODE_BITS} for scheme {saved.scheme}")
    _check_features(saved.features)
    layout = dict(TENSOR_LAYOUTS[saved.scheme])
    if saved.scheme in SCALER_SCHEMES and any(name in saved.tensors for name in SCALER_LAYOUT):
        layout |= SCALER_LAYOUT
    missing = [name for name in layout if name not in saved.tensors]
    unexpected = [name for name in saved.tensors if name not in layout]
    if missing or unexpected:
        found = ", ".join(sorted(saved.tensors)) or "none"
        raise ValueError(f"scheme {saved.scheme} needs tensors {', '.join(layout)}; found {found}")
    for name, (kind, length) in layout.items():
        _check_tensor(name, saved.tensors[name], kind, len(saved.features) if length is PER_FEATURE else length, saved.bits)


def _check_features(features: object) -> None:
    if not isinstance(features, list) or not features or not all(isinstance(name, str) and name for name in features):
        raise ValueError(f"features must be a list of names, found {str(features)[:60]!r}")
    if len(set(features)) != len(features):
        raise ValueError(f"features must be named once each, found {', '.join(features)[:200]}")


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
