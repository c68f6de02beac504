"""params.yaml as pydantic models: one per section, validated once, here, and passed on as they are.

Every model forbids unknown keys (a misspelt key is an error, not a silent default) and is strict
(`standardize: yes` is the string 'yes' to DVC's YAML 1.2 reader, and refused as a flag). A
quantization scheme is a union tagged by ``scheme``: the published schemes are fixed arithmetic,
so they take no other key. ``load`` turns pydantic's first error into one line naming the key,
the value and what is allowed.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, model_validator
from ruamel.yaml import YAML, YAMLError

from housing_predictor.errors import PipelineError
from housing_predictor.paths import PARAMS
from housing_predictor.quantization import MAX_BITS, MIN_BITS


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LoadData(Section):
    test_size: float = Field(gt=0, lt=1)  # fraction held out; load-data checks both sides keep enough rows
    random_state: int = Field(ge=0, le=2**32 - 1)  # train_test_split's seed


class Train(Section):
    standardize: bool


class Affine(Section):
    scheme: Literal["affine"]
    symmetric: bool
    signed: bool
    rounding: Literal["nearest", "truncate"]
    scale_search: Literal["none", "mse"]
    bias_correction: bool


class PublishedA(Section):
    scheme: Literal["published_a"]


class PublishedB(Section):
    scheme: Literal["published_b"]


WeightOnly = Annotated[Affine | PublishedA | PublishedB, Field(discriminator="scheme")]


class IntegerOnly(Section):
    granularity: Literal["per_feature", "per_tensor"]
    calibration: Literal["mse", "minmax", "endpoint"]
    weight_scale_search: bool
    bias_correction: bool


class Quantize(Section):
    q8: WeightOnly
    q16: WeightOnly
    q8int: IntegerOnly


class Evaluate(Section):
    selfcheck_rows: int = Field(ge=1)  # evaluate checks it against the test split's rows


class Sweep(Section):
    min_bits: int = Field(ge=MIN_BITS, le=MAX_BITS)
    max_bits: int = Field(ge=MIN_BITS, le=MAX_BITS)
    # names become metrics keys (`affine.8.r2_drop_ppm`) and plot labels: kept plain
    schemes: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")], WeightOnly] = Field(min_length=1)

    @model_validator(mode="after")
    def _bits_in_order(self) -> Sweep:
        if self.min_bits > self.max_bits:
            raise ValueError(f"min_bits ({self.min_bits}) must not exceed max_bits ({self.max_bits})")
        return self


class Params(Section):
    load_data: LoadData
    train: Train
    quantize: Quantize
    evaluate: Evaluate
    sweep: Sweep


def load(section: str = "", path=PARAMS):
    """The validated section ``section`` of params.yaml ('train', 'quantize.q8'...; '' the whole
    file), or a PipelineError naming the first bad key."""
    document = read(path)
    keys = tuple(section.split(".")) if section else ()
    node = document
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise PipelineError(f"params.yaml: section {'.'.join(keys[: depth + 1])} is missing")
        node = node[key]
    try:
        return TypeAdapter(_annotation_at(Params, document, keys)).validate_python(node)
    except ValidationError as error:
        raise PipelineError(f"params.yaml: {_one_line(error.errors(), document, keys)}") from None


def read(path=PARAMS) -> dict:
    """params.yaml as DVC reads it (ruamel.yaml, YAML 1.2, a repeated key an error)."""
    try:
        text = open(path).read()
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}") from None
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise PipelineError(f"{path} must be a mapping of sections, got {type(document).__name__}")
    return document


def _one_line(errors: list[dict], document: dict, section: tuple) -> str:
    """pydantic's first error as 'key: what is wrong, got value', the key dotted from the file's
    top; unknown keys are named together with the keys allowed there, and come first: a misspelt
    key is an unknown key (what was typed) and a missing one (what was meant)."""
    errors = sorted(errors, key=lambda error: error["type"] != "extra_forbidden")
    error, where = errors[0], _dotted(errors[0]["loc"], document, section)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = where[:-1]
        extras = [_dotted(e["loc"], document, section) for e in errors if e["type"] == kind]
        unknown = [keys[-1] for keys in extras if keys[:-1] == parent]
        what = "key" if parent else "section"  # a key at the file's top is a (misspelt) section
        keys = f"{what} {unknown[0]!r}" if len(unknown) == 1 else f"{what}s " + ", ".join(map(repr, unknown))
        allowed = f"(allowed {what}s: {', '.join(_allowed_keys(document, parent))})"
        return f"{'.'.join(parent)} has unknown {keys} {allowed}" if parent else f"unknown {keys} {allowed}"
    if kind == "missing":
        return f"{'.'.join(where)} is missing"
    if kind == "union_tag_not_found":  # no `scheme` key: perhaps a misspelt one
        keys = ", ".join(map(str, error["input"])) if isinstance(error["input"], dict) else repr(error["input"])
        return f"{'.'.join(where)}.scheme is missing (one of {', '.join(_tags(document, where))}); its keys: {keys}"
    if kind.startswith("union_tag"):
        expected = error.get("ctx", {}).get("expected_tags", "").replace("'", "")
        return f"{'.'.join(where)}.scheme must be one of {expected}; got {error['input'].get('scheme')!r}"
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if kind == "value_error":  # a check across keys (sweep's bit range)
        return f"{'.'.join(where)}: {message}"
    return f"{'.'.join(where)}: {message}, got {error['input']!r}"


def _dotted(loc: tuple, document: dict, section: tuple) -> list[str]:
    """The keys of pydantic's ``loc`` (relative to ``section``) from the file's top."""
    keys, node = list(section), _walk(document, section)
    for part in loc:
        # a tagged union puts the tag (the scheme's name) into the path: it is not a key
        if isinstance(node, dict) and part not in node and part == node.get("scheme"):
            continue
        if part == "[key]":
            break
        keys.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return keys


def _allowed_keys(document: dict, keys: list[str]) -> list[str]:
    model = _member(_annotation_at(Params, document, tuple(keys)), _walk(document, keys))
    return list(model.model_fields) if model else []


def _tags(document: dict, keys: list[str]) -> list[str]:
    """The ``scheme`` values the tagged union at ``keys`` takes."""
    annotation = _unwrapped(_annotation_at(Params, document, tuple(keys)))
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return [tag for member in members for tag in get_args(member.model_fields["scheme"].annotation)]


def _walk(document: dict, keys) -> object:
    node = document
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _annotation_at(model, document: dict, keys: tuple):
    """What validates the value at ``keys``: a model's field, a dict's values, a scheme's member."""
    annotation = model
    for depth, key in enumerate(keys):
        member = _member(annotation, _walk(document, keys[:depth]))
        if member is not None:
            field = member.model_fields[key]
            annotation = Annotated[field.annotation, field]  # with its constraints and discriminator
        else:  # dict[str, X]
            annotation = get_args(_unwrapped(annotation))[1]
    return annotation


def _unwrapped(annotation):
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _member(annotation, node) -> type[BaseModel] | None:
    """The model ``annotation`` stands for at ``node``: itself, or the union member whose
    ``scheme`` is the node's."""
    annotation = _unwrapped(annotation)
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel):
            tag = member.model_fields.get("scheme")
            if tag is None or (isinstance(node, dict) and node.get("scheme") in get_args(tag.annotation)):
                return member
    return None
