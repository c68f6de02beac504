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
    """Load and verify a model file; any problem is a PipelineError naming the file."""
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
    except (SafetensorError, ValueError, KeyError) as error:
        raise PipelineError(f"model file {path} is corrupted (not a readable safetensors file: {error})") from None
    if metadata.get("format") != MODEL_FORMAT:
        raise PipelineError(f"model file {path} is not a {MODEL_FORMAT} file (format {metadata.get('format')!r})")
    if metadata.get("sha256") != content_digest(tensors, metadata):
        raise PipelineError(f"model file {path} is corrupted: its contents do not match the checksum it was saved with")
    try:
        features = json.loads(metadata["features"])
        params = json.loads(metadata["params"])
        bits = int(metadata["bits"])
        scheme = metadata["scheme"]
    except (KeyError, ValueError) as error:
        raise PipelineError(f"model file {path} is corrupted: bad metadata ({error})") from None
    return SavedModel(tensors=tensors, scheme=scheme, bits=bits, features=features, params=params, file_bytes=len(data))


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file: an 8-byte little-endian length, then JSON."""
    if len(data) < 8:
        raise ValueError("file shorter than its header")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        raise ValueError("header longer than the file")
    header = json.loads(data[8 : 8 + length])
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict):
        raise ValueError("no metadata")
    return metadata
