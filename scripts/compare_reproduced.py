"""The reproducibility gate's tolerance check: is the rebuilt workspace the committed result, up to
the last bits of floating point?

scripts/check_reproduced.sh runs this after `dvc repro`, only when the rebuild is not bit for bit
the commit. It passes when every difference is one that another CPU's floating-point kernels
explain, and fails on anything else:

- dvc.lock: the same stages, commands, params, and md5s and sizes of every file the pipeline does
  not produce (code, data sources); only the md5 and size of files it produces may differ.
- metrics/*.json: the same keys in the same order, the same strings, ints and bools; floats may
  differ within ``math.isclose(rel_tol=1e-9, abs_tol=1e-12)``.
- any other file under metrics/, plots/ or reports/ (plot data CSV, the Markdown report): the same text around the
  numbers; numbers within the same tolerance, or one unit of their last printed decimal.

Usage: ``python scripts/compare_reproduced.py [REV]`` (REV defaults to HEAD), from anywhere in the
repository. Standard library and PyYAML only. Exit status 0 when within tolerance, 1 otherwise.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REL_TOL = 1e-9
ABS_TOL = 1e-12
TOLERANCE = f"rel {REL_TOL:g} / abs {ABS_TOL:g}"
LOCK = "dvc.lock"
KEPT_IN_GIT = ("metrics", "plots", "reports")  # the pipeline's cache: false outputs (besides dvc.lock)
PRODUCED_FILE_FIELDS = ("md5", "size")  # what may differ, in dvc.lock, for a file the pipeline writes

# A number as the report prints it: 0.575788, -0.00021, 9.4e-06, 1033. A leading '-' is part of it.
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Comparison:
    """What differs: ``problems`` fail the gate; ``drifts`` are differences within tolerance."""

    problems: list[str] = field(default_factory=list)
    drifts: list[str] = field(default_factory=list)

    def extend(self, other: Comparison) -> None:
        self.problems += other.problems
        self.drifts += other.drifts


def close(old: float, new: float) -> bool:
    """Equal within the gate's tolerance (two NaNs are equal)."""
    if math.isnan(old) or math.isnan(new):
        return math.isnan(old) and math.isnan(new)
    return math.isclose(old, new, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _child(where: str, key: str) -> str:
    return f"{where}{key}" if where.endswith(": ") else f"{where}.{key}"


def compare_json(old, new, where: str) -> Comparison:
    """Two parsed JSON documents: same structure, key order and non-float values; floats close.

    ``where`` names the document in messages, e.g. ``"metrics/evaluate.json: "``."""
    result = Comparison()
    if isinstance(old, float) and isinstance(new, float):
        if old != new and not (math.isnan(old) and math.isnan(new)):
            if close(old, new):
                result.drifts.append(f"{where}: {old!r} -> {new!r} (difference {new - old:.3g})")
            else:
                result.problems.append(f"{where}: {old!r} -> {new!r} (difference {new - old:.3g}, beyond {TOLERANCE})")
    elif isinstance(old, dict) and isinstance(new, dict):
        if list(old) != list(new):
            result.problems.append(f"{where}: keys {list(old)} -> {list(new)} (names and order must match)")
        for key in old:
            if key in new:
                result.extend(compare_json(old[key], new[key], _child(where, key)))
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            result.problems.append(f"{where}: {len(old)} items -> {len(new)}")
        for index, (old_item, new_item) in enumerate(zip(old, new, strict=False)):  # lengths: reported above
            result.extend(compare_json(old_item, new_item, f"{where}[{index}]"))
    elif type(old) is not type(new) or old != new:
        result.problems.append(f"{where}: {old!r} -> {new!r} (only floats may differ)")
    return result


def _last_digit_unit(token: str) -> float | None:
    """One unit of the last printed decimal of a number token (None for an integer: exact)."""
    mantissa, _, exponent = token.lower().partition("e")
    if "." not in mantissa and not exponent:
        return None
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def compare_text(old: str, new: str, where: str) -> Comparison:
    """Two texts: identical apart from numbers, which must be close or one last-digit unit apart."""
    result = Comparison()
    old_parts, new_parts = NUMBER.split(old), NUMBER.split(new)
    old_numbers, new_numbers = NUMBER.findall(old), NUMBER.findall(new)
    if old_parts != new_parts or len(old_numbers) != len(new_numbers):
        old_lines, new_lines = old.splitlines(), new.splitlines()
        pairs = enumerate(zip(old_lines, new_lines, strict=False))
        line = next((i for i, (a, b) in pairs if NUMBER.split(a) != NUMBER.split(b)), min(len(old_lines), len(new_lines)))
        result.problems.append(f"{where}: the text differs, not only its numbers (first at line {line + 1})")
        return result
    for old_token, new_token, match in zip(old_numbers, new_numbers, NUMBER.finditer(old), strict=True):
        if old_token == new_token:
            continue
        line = old.count("\n", 0, match.start()) + 1
        a, b = float(old_token), float(new_token)
        units = [u for u in (_last_digit_unit(old_token), _last_digit_unit(new_token)) if u is not None]
        within_print = len(units) == 2 and abs(a - b) <= max(units) * (1 + 1e-9)
        message = f"{where} line {line}: {old_token} -> {new_token}"
        if close(a, b) or within_print:
            result.drifts.append(message)
        else:
            result.problems.append(f"{message} (beyond {TOLERANCE} and one unit of its last digit)")
    return result


def compare_lock(old: dict, new: dict) -> Comparison:
    """Two parsed dvc.lock files: only the md5/size of files the pipeline produces may differ."""
    result = Comparison()
    stages = [stage for lock in (old, new) for stage in (lock.get("stages") or {}).values()]
    produced = {out["path"] for stage in stages for out in stage.get("outs") or []}
    for key in sorted(set(old) | set(new), key=str):
        if key != "stages" and old.get(key) != new.get(key):
            result.problems.append(f"{LOCK}: {key}: {old.get(key)!r} -> {new.get(key)!r}")
    old_stages, new_stages = old.get("stages") or {}, new.get("stages") or {}
    if list(old_stages) != list(new_stages):
        result.problems.append(f"{LOCK}: stages {list(old_stages)} -> {list(new_stages)}")
    for name in old_stages:
        if name not in new_stages:
            continue
        old_stage, new_stage = old_stages[name], new_stages[name]
        for key in sorted(set(old_stage) | set(new_stage)):
            where = f"{LOCK}: stage {name}: {key}"
            if key in ("deps", "outs"):
                result.extend(_compare_files(old_stage.get(key) or [], new_stage.get(key) or [], produced, where))
            elif old_stage.get(key) != new_stage.get(key):
                result.problems.append(f"{where}: {old_stage.get(key)!r} -> {new_stage.get(key)!r}")
    return result


def _compare_files(old: list[dict], new: list[dict], produced: set[str], where: str) -> Comparison:
    result = Comparison()
    old_by_path, new_by_path = {e["path"]: e for e in old}, {e["path"]: e for e in new}
    if list(old_by_path) != list(new_by_path):
        result.problems.append(f"{where}: files {list(old_by_path)} -> {list(new_by_path)}")
    for path, old_entry in old_by_path.items():
        new_entry = new_by_path.get(path)
        if new_entry is None:
            continue
        for key in sorted(set(old_entry) | set(new_entry)):
            if old_entry.get(key) == new_entry.get(key):
                continue
            change = f"{where}: {path} {key} {old_entry.get(key)!r} -> {new_entry.get(key)!r}"
            if path in produced and key in PRODUCED_FILE_FIELDS:
                result.drifts.append(change)
            else:
                if path in produced:
                    result.problems.append(f"{change} (only {'/'.join(PRODUCED_FILE_FIELDS)} may change)")
                else:
                    result.problems.append(f"{change} (not produced by the pipeline: must not change)")
    return result


def compare_file(path: str, old: str | None, new: str | None) -> Comparison:
    """One file, committed (``old``) against rebuilt (``new``); None when it does not exist."""
    if old is None or new is None:
        state = "new, not committed" if old is None else "committed, not rebuilt"
        return Comparison(problems=[f"{path}: {state}"])
    if old == new:
        return Comparison()
    try:
        if path == LOCK:
            return compare_lock(yaml.safe_load(old) or {}, yaml.safe_load(new) or {})
        if path.endswith(".json"):
            return compare_json(json.loads(old), json.loads(new), f"{path}: ")
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        return Comparison(problems=[f"{path}: cannot be parsed ({error})"])
    return compare_text(old, new, path)


def _git(*args: str, root: Path) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def compare_workspace(root: Path, rev: str = "HEAD") -> Comparison:
    """dvc.lock and every file under metrics/, plots/ and reports/: ``rev``'s against the work tree's."""
    committed = set(_git("ls-tree", "-r", "--name-only", rev, "--", LOCK, *KEPT_IN_GIT, root=root).split())
    present = set(_git("ls-files", "--cached", "--others", "--exclude-standard", "--", LOCK, *KEPT_IN_GIT, root=root).split())
    result = Comparison()
    for path in sorted(committed | present):
        old = _git("show", f"{rev}:{path}", root=root) if path in committed else None
        new = (root / path).read_text() if (root / path).is_file() else None
        result.extend(compare_file(path, old, new))
    return result


def main(argv: list[str]) -> int:
    rev = argv[0] if argv else "HEAD"
    root = Path(_git("rev-parse", "--show-toplevel", root=Path.cwd()).strip())
    result = compare_workspace(root, rev)
    print(f"tolerance check against {rev} (floats within {TOLERANCE}; output hashes in {LOCK} may differ):")
    for line in result.drifts:
        print(f"  within tolerance: {line}")
    for line in result.problems:
        print(f"  NOT REPRODUCED:   {line}")
    if result.problems:
        print(f"{len(result.problems)} difference(s) beyond tolerance")
        return 1
    print(f"all {len(result.drifts)} difference(s) within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
