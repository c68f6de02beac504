"""params.yaml as pydantic models: one per section, validated once, here, and passed on as they are.

Every model forbids unknown keys (a misspelt key is an error, not a silent default) and is strict
(`standardize: yes` is the string 'yes' to DVC's YAML 1.2 reader, and refused as a flag). A
quantization scheme is a union tagged by ``scheme``: the published schemes are fixed arithmetic,
so they take no other key. ``load`` validates the whole file, so a stage never runs on a params.yaml
that another stage would refuse, and turns pydantic's first error into one line naming the key,
the value and what is allowed.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from ruamel.yaml import YAML, YAMLError

from housing_predictor.errors import PipelineError
from housing_predictor.paths import PARAMS
from housing_predictor.quantization import MAX_BITS, MIN_BITS


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    _keys_are = "key"  # what the keys of this model are called in messages

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: object) -> object:
        """Unknown keys named with the allowed ones, before anything else: a misspelt key is
        unknown (what was typed) and missing (what was meant), and pydantic's own error for the
        first names only the key."""
        unknown = [key for key in data if key not in cls.model_fields] if isinstance(data, dict) else []
        if unknown:
            what = cls._keys_are.default
            keys = f"{what} {unknown[0]!r}" if len(unknown) == 1 else f"{what}s {', '.join(map(repr, unknown))}"
            raise ValueError(f"unknown {keys} (allowed {what}s: {', '.join(cls.model_fields)})")
        return data


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
SCHEMES = [get_args(member.model_fields["scheme"].annotation)[0] for member in get_args(get_args(WeightOnly)[0])]


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
    _keys_are = "section"
    load_data: LoadData
    train: Train
    quantize: Quantize
    evaluate: Evaluate
    sweep: Sweep


def load(path=PARAMS) -> Params:
    """params.yaml, validated; a PipelineError naming the first bad key otherwise."""
    document = read(path)
    try:
        return Params.model_validate(document)
    except ValidationError as error:
        raise PipelineError(f"params.yaml: {_one_line(error.errors()[0], document)}") from None


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


def _one_line(error: dict, document: dict) -> str:
    """pydantic's error as 'key: what is wrong, got value', the key dotted from the file's top."""
    keys, node = [], document
    for part in error["loc"]:
        # a tagged union puts the tag (the scheme's name) into the path: it is not a key
        if isinstance(node, dict) and part not in node and part == node.get("scheme"):
            continue
        if part == "[key]":
            break
        keys.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
    where = ".".join(keys)
    if error["type"] == "missing":
        return f"{where} is missing"
    if error["type"] == "union_tag_not_found":  # no `scheme` key: perhaps a misspelt one
        found = ", ".join(map(repr, error["input"])) if isinstance(error["input"], dict) else repr(error["input"])
        return f"{where}.scheme is missing (one of {', '.join(SCHEMES)}); found {found}"
    if error["type"] == "union_tag_invalid":
        return f"{where}.scheme must be one of {', '.join(SCHEMES)}; got {error['input'].get('scheme')!r}"
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if error["type"] == "value_error":  # our own checks: unknown keys, sweep's bit range
        return f"{where}: {message}" if where else message
    return f"{where}: {message}, got {error['input']!r}"
