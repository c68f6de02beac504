"""Request bodies to feature arrays, and the errors a client gets back: numpy only, no HTTP.

Two wire formats arrive at the server:
- the Open Inference Protocol (V2, KServe / Triton / MLServer), ``POST /v2/models/{m}/infer``:
  ``{"inputs": [{"name", "shape", "datatype", "data"}], ...}``;
- MLflow's and SageMaker's scoring protocol, ``POST /invocations``: CSV with a header, or JSON
  ``dataframe_split`` / ``dataframe_records`` / ``inputs`` / ``instances``.

Each is validated here, once, into ``X`` (n_rows, n_features) float64 in the model's feature order;
anything a client can get wrong is a ``RequestError`` naming the problem, which the app sends as
``{"error": ...}`` with its status. The CSV path is the CLI's own reader (csv_io.read_table), and
JSON numbers are read by Python's ``float``, which rounds as the CLI's reader does: the same rows
give the same float64 values, and so the same predictions, bit for bit.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import simdjson

from housing_predictor.csv_io import read_table
from housing_predictor.errors import PipelineError

DATATYPES = ("FP32", "FP64")  # what a V2 input may be; predictions are always FP64
OUTPUT_NAME = "predict"
MAX_ERROR_VALUE_CHARS = 40


class RequestError(Exception):
    """A bad request: ``status`` (400, 404, 405, 413, 415) and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> RequestError:
    return RequestError(400, message)


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_ERROR_VALUE_CHARS else text[: MAX_ERROR_VALUE_CHARS - 3] + "..."


def _refuse_constant(name: str) -> float:
    raise bad_request(f"request body holds {name}: NaN and infinity are refused, send finite numbers")


# simdjson's errors that Python's json module accepts, in words (simdjson says no more than its code)
SIMDJSON_ERRORS = {
    "NUMBER_ERROR": "a number is out of the float64 range, or malformed",
    "BIGINT_ERROR": "an integer is out of the 64-bit range",
    "STRING_ERROR": "a string is invalid (a lone surrogate, or a bad escape)",
    "UTF8_ERROR": "it is not UTF-8",
    "DEPTH_ERROR": "it is nested too deeply",
}


def parse_json(body: bytes | bytearray) -> object:
    """The JSON document of ``body``, parsed by simdjson: objects and arrays stay simdjson's
    (``python`` converts them; ``numeric_array`` reads an array of numbers straight into numpy).

    Refused with a 400: bad JSON, NaN/Infinity, lone surrogates (which no response could echo),
    integers beyond 64 bits, nesting deeper than 1,024. simdjson names no position, so a refused
    body is parsed again by Python's json module, whose message does (only a bad request pays)."""
    if not body or body.isspace():  # (not strip(): a copy of the body)
        raise bad_request("request body is empty: expected a JSON document")
    try:
        return simdjson.Parser().parse(body)
    except (ValueError, RuntimeError, TypeError, MemoryError) as error:  # UnicodeDecodeError is a ValueError
        refused = str(error)
    try:
        json.loads(body, parse_constant=_refuse_constant)
    except RequestError:
        raise
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise bad_request(f"request body is not valid JSON: {error}") from None
    code = refused.split(":", 1)[0]
    raise bad_request(f"request body is not valid JSON: {SIMDJSON_ERRORS.get(code, refused)}")


def python(value: object) -> object:
    """``value`` with simdjson's objects and arrays as Python dicts and lists."""
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    if isinstance(value, simdjson.Array):
        return value.as_list()
    return value


def _nesting(data: list) -> int:
    """How deep the first elements of ``data`` nest (``[[1, 2]]``: 2), in time linear in it."""
    depth = 0
    while isinstance(data, list):
        depth += 1
        data = data[0] if data else None
    return depth


def numeric_array(data: object, where: str, max_ndim: int = 2) -> np.ndarray:
    """``data`` (numbers, in nested lists of at most ``max_ndim`` levels) as a float64 array of its
    nested shape.

    A flat simdjson array of numbers is read by simdjson into numpy directly: no Python float is
    made, so a large body costs a few times its size in memory. Anything else is converted to
    Python and checked value by value. Only JSON numbers are numbers here: numpy would also read
    "1.5" or true, which a client did not mean as a feature value. Ragged lists are refused."""
    if isinstance(data, simdjson.Array):
        if len(data) and not isinstance(data[0], simdjson.Array):
            try:
                values = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
            except (TypeError, ValueError, RuntimeError):  # a value that is no number: named below
                values = None
            # as_buffer flattens nested arrays: as many values as elements means none was an array
            # (but for one holding exactly one number, [1, [2], 3], read as [1, 2, 3]: harmless)
            if values is not None and len(values) == len(data):
                if not np.isfinite(values).all():  # cannot be: simdjson refuses what overflows
                    raise bad_request(f"{where} holds a value that is not a finite number")
                return values
        data = data.as_list()
    if not isinstance(data, list):
        raise bad_request(f"{where} must be a list of numbers, got {_shown(python(data))}")
    if _nesting(data) > max_ndim:
        raise bad_request(f"{where} is nested {_nesting(data)} levels deep: expected at most {max_ndim} (rows of numbers)")
    try:
        objects = np.array(data, dtype=object)
    except ValueError as error:  # lists ragged at a depth numpy cannot hold as objects
        raise bad_request(f"{where} is not a rectangular list of numbers ({error})") from None
    if objects.size == 0:
        raise bad_request(f"{where} is empty: send at least one row")
    for value in objects.flat:
        if type(value) not in (float, int):  # bool is a subclass of int: compare types exactly
            problem = "is not rectangular" if isinstance(value, list) else f"holds {_shown(value)}, not a number"
            raise bad_request(f"{where} {problem}")
    try:
        values = objects.astype(np.float64)
    except OverflowError:  # an integer beyond float64
        values = np.full(objects.shape, np.inf)
    if not np.isfinite(values).all():
        bad = objects.flat[int(np.flatnonzero(~np.isfinite(values.ravel()))[0])]
        raise bad_request(f"{where} holds {_shown(bad)}, not a finite number (NaN and infinity are refused)")
    return values


# ---------------------------------------------------------------------------------------------
# Open Inference Protocol (V2)
# ---------------------------------------------------------------------------------------------


def _field(document: dict, key: str, kind: type | tuple[type, ...], where: str) -> object:
    if key not in document:
        raise bad_request(f"{where} has no {key!r}")
    value = document[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = {list: "a list", str: "a string", dict: "an object"}.get(kind, "a valid value")
        raise bad_request(f"{where} {key!r} must be {expected}, got {_shown(value)}")
    return value


def _v2_tensor(tensor: object, where: str) -> tuple[str, list[int], np.ndarray]:
    """One V2 input tensor as ``(name, shape, values)``, values float64 of that shape."""
    if not isinstance(tensor, dict):
        raise bad_request(f"{where} must be an object with name, shape, datatype and data")
    name = _field(tensor, "name", str, where)
    where = f"input {name!r}"
    shape = _field(tensor, "shape", list, where)
    if not shape or not all(type(size) is int and size >= 0 for size in shape):
        raise bad_request(f"{where} shape {_shown(shape)} is not a list of sizes (non-negative integers)")
    datatype = _field(tensor, "datatype", str, where)
    if datatype not in DATATYPES:
        raise bad_request(f"{where} datatype {datatype!r} is not supported: send FP32 or FP64")
    values = numeric_array(tensor["data"], f"{where} data", max_ndim=len(shape)) if "data" in tensor else None
    if values is None:
        raise bad_request(f"{where} has no 'data' (binary tensor data is not supported: send JSON data)")
    expected = math.prod(shape)
    # Row-major data, flat or nested as the shape is (the protocol allows both).
    if list(values.shape) != shape and not (values.ndim == 1 and values.size == expected):
        raise bad_request(f"{where} data has {values.size} values in shape {list(values.shape)}, shape {shape} needs {expected}")
    values = values.reshape(shape)
    if datatype == "FP32":  # the client's numbers are float32s: round them as it would
        with np.errstate(over="ignore"):
            values = values.astype(np.float32).astype(np.float64)
        if not np.isfinite(values).all():
            raise bad_request(f"{where} data holds a value beyond the FP32 range")
    return name, shape, values


def v2_document(root: object) -> object:
    """A parsed V2 request as Python objects, but each input's ``data``: numeric_array reads it."""
    if not isinstance(root, simdjson.Object):
        return python(root)
    # (keys, then each value: simdjson's items() would convert the data too)
    document = {key: python(root[key]) for key in root if key != "inputs"}
    inputs = root.get("inputs")
    if isinstance(inputs, simdjson.Array):
        document["inputs"] = [
            {key: tensor[key] if key == "data" else python(tensor[key]) for key in tensor}
            if isinstance(tensor, simdjson.Object)
            else python(tensor)
            for tensor in inputs
        ]
    elif "inputs" in root:
        document["inputs"] = python(inputs)
    return document


def v2_features(document: object, features: list[str]) -> tuple[np.ndarray, str | None]:
    """``(X, request id)`` of a V2 inference request.

    Either one input of shape [N, n_features], columns in ``features`` order (any name), or one
    input per feature, named after it, each of shape [N] (or [N, 1])."""
    if not isinstance(document, dict):
        raise bad_request("request body must be a JSON object with 'inputs'")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request(f"request 'id' must be a string, got {_shown(request_id)}")
    inputs = _field(document, "inputs", list, "request")
    if not inputs:
        raise bad_request("request 'inputs' is empty: send one [N, 8] input or one [N] input per feature")
    outputs = document.get("outputs", [])
    if not isinstance(outputs, list):
        raise bad_request(f"request 'outputs' must be a list of {{\"name\": ...}}, got {_shown(outputs)}")
    for output in outputs:
        if not isinstance(output, dict) or output.get("name") != OUTPUT_NAME:
            raise bad_request(f"requested output {_shown(output)} does not exist: the one output is {OUTPUT_NAME!r}")
    tensors = [_v2_tensor(tensor, f"request input {i}") for i, tensor in enumerate(inputs)]
    n_features = len(features)
    if len(tensors) == 1:
        name, shape, values = tensors[0]
        if len(shape) != 2 or shape[1] != n_features:
            raise bad_request(f"input {name!r} has shape {shape}: expected [N, {n_features}], columns {', '.join(features)}")
        return values, request_id
    return _named_columns({name: (shape, values) for name, shape, values in tensors}, len(tensors), features), request_id


def _missing_and_unknown(names, features: list[str]) -> tuple[list[str], list]:
    """The features ``names`` lacks, and the names that are no feature."""
    return [name for name in features if name not in names], [name for name in names if name not in features]


def _named_columns(columns: dict[str, tuple[list[int], np.ndarray]], n_inputs: int, features: list[str]) -> np.ndarray:
    if len(columns) != n_inputs:
        raise bad_request("request inputs repeat a name: send one input per feature")
    missing, unknown = _missing_and_unknown(columns, features)
    if missing or unknown:
        raise bad_request(
            f"request inputs: missing {', '.join(missing) or 'none'}, unknown {', '.join(map(repr, unknown)) or 'none'} "
            f"(send one [N, {len(features)}] input, or one [N] input named after each feature: {', '.join(features)})"
        )
    n_rows = {columns[name][0][0] for name in features}
    if len(n_rows) != 1 or any(len(shape) > 2 or shape[1:] not in ([], [1]) for shape, _ in columns.values()):
        shapes = ", ".join(f"{name} {columns[name][0]}" for name in features)
        raise bad_request(f"request inputs must all have shape [N] (or [N, 1]) with the same N: {shapes}")
    return np.column_stack([columns[name][1].reshape(-1) for name in features])


def v2_response(model_name: str, version: str, predictions: np.ndarray, request_id: str | None) -> dict:
    response = {
        "model_name": model_name,
        "model_version": version,
        "outputs": [{"name": OUTPUT_NAME, "shape": [len(predictions)], "datatype": "FP64", "data": predictions.tolist()}],
    }
    if request_id is not None:
        response["id"] = request_id
    return response


# ---------------------------------------------------------------------------------------------
# MLflow / SageMaker scoring protocol (/invocations)
# ---------------------------------------------------------------------------------------------

INVOCATION_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances")


def csv_features(body: bytes, features: list[str]) -> np.ndarray:
    """A CSV body (header naming the features, any order) through the CLI's own reader."""
    try:
        return np.concatenate(list(read_table(io.BytesIO(body), features, "request body")))
    except PipelineError as error:
        raise bad_request(str(error)) from None


def invocation_features(document: object, features: list[str]) -> np.ndarray:
    """X of an MLflow-style JSON body: exactly one of ``dataframe_split`` ({"columns", "data"}),
    ``dataframe_records`` ([{column: value}]), ``inputs`` / ``instances`` (rows in feature order,
    records, or {column: [values]})."""
    keys = [key for key in INVOCATION_KEYS if isinstance(document, dict) and key in document]
    if len(keys) != 1:
        raise bad_request(f"request body must be a JSON object with exactly one of {', '.join(INVOCATION_KEYS)}")
    key = keys[0]
    payload = document[key]
    if key == "dataframe_split":
        if not isinstance(payload, dict):
            raise bad_request(f"dataframe_split must be an object with 'columns' and 'data', got {_shown(payload)}")
        columns = _field(payload, "columns", list, "dataframe_split")
        return _reordered(
            numeric_array(_field(payload, "data", list, "dataframe_split"), "dataframe_split data"),
            columns,
            features,
            "dataframe_split",
        )
    if key == "dataframe_records":
        return _records(payload, features, key)
    # inputs / instances: a tensor of rows, records, or columns
    if isinstance(payload, dict):
        columns = list(payload)
        values = numeric_array([payload[name] for name in columns], f"{key} columns")
        return _reordered(values.reshape(len(columns), -1).T if values.ndim <= 2 else values, columns, features, key)
    if isinstance(payload, list) and payload and all(isinstance(row, dict) for row in payload):
        return _records(payload, features, key)
    values = numeric_array(payload, key)
    if values.ndim != 2 or values.shape[1] != len(features):
        raise bad_request(
            f"{key} has shape {list(values.shape)}: expected rows of {len(features)} numbers in the order {', '.join(features)}"
        )
    return values


def _records(records: object, features: list[str], where: str) -> np.ndarray:
    if not isinstance(records, list) or not records or not all(isinstance(row, dict) for row in records):
        raise bad_request(f"{where} must be a non-empty list of objects {{column: value}}")
    for i, row in enumerate(records):
        if set(row) != set(features):
            missing, unknown = _missing_and_unknown(row, features)
            raise bad_request(
                f"{where} row {i}: missing {', '.join(missing) or 'none'}, unknown {', '.join(map(repr, unknown)) or 'none'}"
            )
    return numeric_array([[row[name] for name in features] for row in records], where)


def _reordered(values: np.ndarray, columns: list, features: list[str], where: str) -> np.ndarray:
    """``values`` (rows of ``columns``) with its columns in ``features`` order."""
    if not all(isinstance(name, str) for name in columns):
        raise bad_request(f"{where} column names must be strings, got {_shown(columns)}")
    missing, unknown = _missing_and_unknown(columns, features)
    if missing or unknown or len(set(columns)) != len(columns):
        raise bad_request(
            f"{where} columns: missing {', '.join(missing) or 'none'}, unknown {', '.join(map(repr, unknown)) or 'none'}"
            f"{', repeated' if len(set(columns)) != len(columns) else ''} (expected {', '.join(features)}, in any order)"
        )
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise bad_request(f"{where} data has shape {list(values.shape)}: expected rows of {len(columns)} values, one per column")
    return values[:, [columns.index(name) for name in features]]
