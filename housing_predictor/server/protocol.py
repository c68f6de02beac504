"""The server's API declared once, as msgspec Structs, and request bodies to feature arrays.

Requests are decoded and validated against the Structs in C, at the edge, and a bad field is named
by its path ("Expected `int`, got `str` - at `$.inputs[0].shape[0]`"); responses are encoded from
them; openapi.py generates the served OpenAPI document from them. Two wire formats: the Open
Inference Protocol (V2: KServe, Triton, MLServer) and MLflow's and SageMaker's /invocations (CSV
with a header, through the CLI's reader csv_io.read_table, or JSON). Each becomes ``X`` (n_rows,
n_features) float64 in the model's feature order; whatever a client gets wrong is a RequestError
naming the field and the rule. JSON numbers are parsed by simdjson (a V2 tensor's flat data) or
msgspec, which round every decimal to the nearest float64 as Python's ``float`` and the CLI's
reader do: the same predictions, bit for bit.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
from typing import Annotated, Literal

import msgspec
import numpy as np
import orjson
import simdjson
from msgspec import Meta, Raw

from housing_predictor.csv_io import read_table
from housing_predictor.errors import PipelineError

OUTPUT_NAME = "predict"
DATATYPES = ("FP32", "FP64")  # what a V2 input may be; predictions are always FP64
DATA_BLOCK_BYTES = 1 << 16
SMALL_BODY_BYTES = 1024  # about 5 rows in V2


class RequestError(Exception):
    """A bad request: ``status`` (400, 404, 413, 415) and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> RequestError:
    return RequestError(400, message)


class Body(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A JSON object of these keys: an unknown one (a typo, ``datatyp``) is refused, named."""


Size = Annotated[int, Meta(ge=0, le=2**63 - 1)]  # the protocol's shapes are int64
Parameters = dict[str, str | int | float | bool]  # the protocol's parameters: scalar values
TENSOR_DATA = {
    "description": "row-major numbers, flat or nested as the shape is",
    "type": "array",
    "items": {"anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]},
}


class RequestInput(Body):
    name: str
    shape: Annotated[list[Size], Meta(min_length=1, max_length=2)]
    datatype: Literal["FP32", "FP64"]
    data: Annotated[Raw, Meta(extra_json_schema=TENSOR_DATA)]  # read by tensor_values, into numpy
    parameters: Parameters | None = None


class RequestOutput(Body):
    name: Literal["predict"]
    parameters: Parameters | None = None


class InferenceRequest(Body):
    inputs: Annotated[list[RequestInput], Meta(min_length=1)]
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[RequestOutput] | None = None


# Predictions as JSON numbers, written by orjson straight from the float64 array: the shortest text
# that reads back as the same bits, without the Python float per value that msgspec's encoding of a
# list would need; msgspec places the bytes as they are.
PREDICTIONS = {"type": "array", "items": {"type": "number"}}
Numbers = Annotated[Raw, Meta(extra_json_schema=PREDICTIONS)]


def numbers(values: np.ndarray) -> Raw:
    return Raw(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY))


class ResponseOutput(Body):
    name: str
    shape: list[int]
    datatype: str
    data: Numbers


class InferenceResponse(Body):
    model_name: str
    model_version: str
    outputs: list[ResponseOutput]
    id: str | None = None


class TensorMetadata(Body):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, str] | None = None


class ModelMetadata(Body):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, str | int]


def _body(struct_name: str, /, **fields: object) -> type[Body]:
    return msgspec.defstruct(struct_name, list(fields.items()), bases=(Body,), module=__name__)


ServerMetadata = _body("ServerMetadata", name=str, version=str, extensions=list[str])
Live, Ready = _body("Live", live=bool), _body("Ready", ready=bool)
ModelReady = _body("ModelReady", name=str, ready=bool)
Ping = _body("Ping", status=Literal["healthy", "shutting down"])
Error = _body("Error", error=str)
Predictions = _body("Predictions", predictions=Numbers)


class DataframeSplit(Body):
    columns: list[str]
    data: list[list[float]]
    index: list[int | str] | None = None  # pandas' orient="split" writes it; rows are read in order


# Rows in feature order, records {column: value}, or columns {column: [values]}
Tensor = list[list[float] | dict[str, float]] | dict[str, list[float]]


class Invocation(Body):
    """Exactly one of the four (MLflow's scoring protocol)."""

    dataframe_split: DataframeSplit | None = None
    dataframe_records: list[dict[str, float]] | None = None
    inputs: Tensor | None = None
    instances: Tensor | None = None


V2_REQUEST = msgspec.json.Decoder(InferenceRequest)
INVOCATION = msgspec.json.Decoder(Invocation)
ROWS_OR_NUMBERS = msgspec.json.Decoder(list[float | list[float]])
NOT_A_NUMBER = re.compile(rb"-?(NaN|Infinity)")
# One parser for the process, its buffers kept: a worker reads one body at a time (handlers do not
# await while reading), and each block's values are copied out before the next parse.
PARSER = simdjson.Parser()


def _unique_keys(pairs: list[tuple[str, object]]) -> None:
    if len(dict(pairs)) != len(pairs):
        keys = [key for key, _ in pairs]
        repeated = next(key for i, key in enumerate(keys) if key in keys[:i])
        raise bad_request(f"request body repeats the key {repeated!r} in one object: send each key once")


def _address(buffer: object) -> int:
    return np.frombuffer(buffer, dtype=np.uint8).ctypes.data


def decode(body: bytes | bytearray, decoder: msgspec.json.Decoder) -> object:
    """``body`` decoded and validated by ``decoder``; refused with a 400 naming the field and rule.

    msgspec (like json, orjson and simdjson) keeps the last of repeated keys, where a proxy that
    reads the first would see another request: so the body is read once more by Python's json
    with an object_pairs_hook that refuses them (a large V2 body without its data: _v2_request)."""
    if not body or body.isspace():  # (not strip(): a copy of the body)
        raise bad_request("request body is empty: expected a JSON document")
    try:
        document = decoder.decode(body)
    except msgspec.ValidationError as error:
        raise bad_request(f"request body: {error}") from None
    except msgspec.DecodeError as error:
        at = re.search(r"\(byte (\d+)\)", str(error))
        if at and NOT_A_NUMBER.match(body, int(at.group(1))):
            raise bad_request(f"request body holds NaN or infinity at byte {at.group(1)}: send finite numbers") from None
        raise bad_request(f"request body is not valid JSON: {error}") from None
    except RecursionError:
        raise bad_request("request body is not valid JSON: it is nested too deeply") from None
    try:
        json.loads(body, object_pairs_hook=_unique_keys)
    except (RecursionError, ValueError) as error:  # (a repeated key's first value, which msgspec skipped)
        raise bad_request(f"request body is not valid JSON: {error}") from None
    return document


def tensor_values(raw: Raw, path: str) -> np.ndarray:
    """A V2 tensor's ``data`` as float64 (1-D if flat, 2-D if rows).

    A flat array of numbers (what KServe's and Triton's clients send) is read in blocks of 64 KiB
    cut at commas, each by simdjson straight into float64s: no Python float is made, and a body
    of 8 MiB costs a few times its size in memory, not the 4-5x of a Python float per number
    (docs/serving.md has the figure, from benchmarks/serve_benchmark.py). Anything else (rows, or a value that is no
    number) is decoded by msgspec, which names the bad value's path."""
    text, parser = memoryview(raw), PARSER
    blocks, start, end = [], 1, len(text) - 1
    if text[0] == ord("[") and text[-1] == ord("]"):
        try:
            while start < end:
                stop = min(start + DATA_BLOCK_BYTES, end)
                block = bytes(text[start:stop])
                if stop < end:  # cut after the last comma: the rest starts the next block
                    cut = block.rindex(b",")
                    block, stop = block[:cut], start + cut + 1
                if b"[" in block:  # rows (which as_buffer would flatten): msgspec reads them
                    raise ValueError
                blocks.append(np.frombuffer(parser.parse(b"[" + block + b"]").as_buffer(of_type="d"), dtype=np.float64))
                start = stop
            return np.concatenate(blocks) if len(blocks) > 1 else blocks[0] if blocks else np.empty(0)
        except (ValueError, RuntimeError, TypeError):  # not numbers only (or beyond what simdjson reads)
            pass
    try:
        values = ROWS_OR_NUMBERS.decode(raw)
    except msgspec.DecodeError as error:
        raise bad_request(f"request body: {str(error).replace('`$', f'`{path}')}") from None
    if any(isinstance(value, list) for value in values):
        if not all(isinstance(value, list) for value in values) or len({len(row) for row in values}) > 1:
            raise bad_request(f"{path} is not rectangular: rows of different lengths, or numbers beside rows")
    return np.array(values, dtype=np.float64)


def _data_spans(body: bytes | bytearray) -> list[tuple[int, int]]:
    """Where each ``"data": [...]`` that holds no nested array seems to sit in ``body``, by text
    search; _v2_request proves it (a span inside a string would leave a placeholder no tensor holds)."""
    spans, at = [], body.find(b'"data"')
    while at >= 0:
        start = body.find(b"[", at + 6, at + 70)
        end = body.find(b"]", start) if start >= 0 and body[at + 6 : start].strip() == b":" else -1
        if end >= 0 and body.find(b"[", start + 1, end) < 0:
            spans.append((start, end + 1))
        at = body.find(b'"data"', max(end, at + 6))
    return spans


def _v2_request(body: bytes | bytearray) -> tuple[InferenceRequest, list]:
    """The V2 request of ``body`` and each input's data (bytes of the body).

    msgspec's pass over a tensor's data, which simdjson then reads, and json's for repeated keys,
    cost tens of microseconds of a 1,000-row request: so the data spans of a body of more than a
    few rows are cut out by _data_spans, each replaced by ``0``, and what is left is decoded. The
    cut is kept only if the placeholders are exactly the tensors' data (by their place in what
    msgspec decoded: a Raw is a view of its input); else (rows, or any error) the whole body is
    decoded, which names the field."""
    spans = _data_spans(body) if len(body) > SMALL_BODY_BYTES else []
    if spans:
        pieces, start = [], 0
        for span_start, span_end in spans:
            pieces += [body[start:span_start], b"0"]
            start = span_end
        skeleton = b"".join([*pieces, body[start:]])
        try:
            request = decode(skeleton, V2_REQUEST)
        except RequestError:
            request = None
        if request is not None:
            offsets = list(itertools.accumulate(len(piece) for piece in pieces))[::2]  # each placeholder's
            span_at, base, text = dict(zip(offsets, spans, strict=True)), _address(skeleton), memoryview(body)
            held = [_address(tensor.data) - base if len(tensor.data) == 1 else -1 for tensor in request.inputs]
            if sorted(held) == offsets:
                return request, [text[slice(*span_at[offset])] for offset in held]
    request = decode(body, V2_REQUEST)
    return request, [tensor.data for tensor in request.inputs]


def _v2_tensor(tensor: RequestInput, data: Raw | memoryview, path: str) -> np.ndarray:
    """One V2 input's values, float64 in its shape."""
    values = tensor_values(data, f"{path}.data")
    shape, expected = tensor.shape, math.prod(tensor.shape)
    # Row-major data, flat or nested as the shape is (the protocol allows both).
    if list(values.shape) != shape and not (values.ndim == 1 and values.size == expected):
        raise bad_request(f"{path}.data has {values.size} values in shape {list(values.shape)}: shape {shape} needs {expected}")
    if values.size == 0:
        raise bad_request(f"{path}.data is empty: send at least one row")
    values = values.reshape(shape)
    if tensor.datatype == "FP32":  # the client's numbers are float32s: round them as it would
        with np.errstate(over="ignore"):
            values = values.astype(np.float32).astype(np.float64)
        if not np.isfinite(values).all():
            raise bad_request(f"{path}.data holds a value beyond the FP32 range")
    return values


def v2_features(body: bytes | bytearray, features: list[str]) -> tuple[np.ndarray, str | None]:
    """``(X, request id)`` of a V2 inference request: one input of shape [N, n_features], columns
    in ``features`` order (any name), or one input per feature, named after it, each [N] or [N, 1]."""
    request, data = _v2_request(body)
    tensors = [(tensor, _v2_tensor(tensor, data[i], f"$.inputs[{i}]")) for i, tensor in enumerate(request.inputs)]
    n_features = len(features)
    if len(tensors) == 1:
        tensor, values = tensors[0]
        if len(tensor.shape) != 2 or tensor.shape[1] != n_features:
            raise bad_request(
                f"input {tensor.name!r} has shape {tensor.shape}: expected [N, {n_features}], columns {', '.join(features)}"
            )
        return values, request.id
    columns = {tensor.name: values for tensor, values in tensors}
    if len(columns) != len(tensors):
        raise bad_request("request inputs repeat a name: send one input per feature")
    _check_columns(list(columns), features, "request inputs")
    if len({len(values) for values in columns.values()}) != 1 or any(t.shape[1:] not in ([], [1]) for t, _ in tensors):
        shapes = ", ".join(f"{tensor.name} {tensor.shape}" for tensor, _ in tensors)
        raise bad_request(f"request inputs must all have shape [N] (or [N, 1]) with the same N: {shapes}")
    return np.column_stack([columns[name].reshape(-1) for name in features]), request.id


def v2_response(model_name: str, version: str, predictions: np.ndarray, request_id: str | None) -> InferenceResponse:
    output = ResponseOutput(OUTPUT_NAME, [len(predictions)], "FP64", numbers(predictions))
    return InferenceResponse(model_name, version, [output], request_id)


INVOCATION_KEYS = tuple(Invocation.__struct_fields__)


def csv_features(body: bytes, features: list[str]) -> np.ndarray:
    """A CSV body (header naming the features, any order) through the CLI's own reader."""
    try:
        return np.concatenate(list(read_table(io.BytesIO(body), features, "request body")))
    except PipelineError as error:
        raise bad_request(str(error)) from None


def _check_columns(columns: list[str], features: list[str], where: str) -> None:
    missing, unknown = [name for name in features if name not in columns], [name for name in columns if name not in features]
    if missing or unknown or len(set(columns)) != len(columns):
        raise bad_request(
            f"{where}: missing {', '.join(missing) or 'none'}, unknown {', '.join(map(repr, unknown)) or 'none'}"
            f"{', repeated' if len(set(columns)) != len(columns) else ''} (expected {', '.join(features)}, in any order)"
        )


def _rows(rows: list[list[float]], where: str) -> np.ndarray:
    if not rows or not rows[0]:
        raise bad_request(f"{where} is empty: send at least one row")
    if len({len(row) for row in rows}) != 1:
        raise bad_request(f"{where} is not rectangular: its rows have {sorted({len(row) for row in rows})} values")
    return np.array(rows, dtype=np.float64)


def _columns(values: np.ndarray, columns: list[str], features: list[str], where: str) -> np.ndarray:
    """``values`` (rows of ``columns``) with its columns in ``features`` order."""
    _check_columns(columns, features, where)
    if values.shape[1] != len(columns):
        raise bad_request(f"{where}: rows of {values.shape[1]} values, {len(columns)} columns")
    return values[:, [columns.index(name) for name in features]]


def invocation_features(body: bytes | bytearray, features: list[str]) -> np.ndarray:
    """X of an MLflow-style JSON body: exactly one of ``dataframe_split`` ({"columns", "data"}),
    ``dataframe_records`` ([{column: value}]), ``inputs`` / ``instances`` (rows in feature order,
    records, or {column: [values]})."""
    request = decode(body, INVOCATION)
    keys = [key for key in INVOCATION_KEYS if getattr(request, key) is not None]
    if len(keys) != 1:
        raise bad_request(f"request body must be a JSON object with exactly one of {', '.join(INVOCATION_KEYS)}")
    key, payload = keys[0], getattr(request, keys[0])
    if key == "dataframe_split":
        return _columns(_rows(payload.data, "dataframe_split.data"), payload.columns, features, "dataframe_split columns")
    if isinstance(payload, dict):  # columns
        return _columns(_rows(list(payload.values()), f"{key} columns").T, list(payload), features, f"{key} columns")
    if payload and all(isinstance(row, dict) for row in payload):  # records
        for i, record in enumerate(payload):
            _check_columns(list(record), features, f"{key}[{i}]")
        return _rows([[record[name] for name in features] for record in payload], key)
    if any(isinstance(row, dict) for row in payload):
        raise bad_request(f"{key} mixes rows and records: send one kind")
    values = _rows(payload, key)
    if values.shape[1] != len(features):
        raise bad_request(
            f"{key} has shape {list(values.shape)}: expected rows of {len(features)} numbers, {', '.join(features)}"
        )
    return values
