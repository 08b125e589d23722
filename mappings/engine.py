"""The mapping engine: one compiled record spec, both directions, every problem at once.

`to_fhir` checks a PAS record field by field (required, type, pattern, length, code
table, transform) and collects ALL problems before writing anything, so a clerk
fixes a record in one round trip. `to_pas` reads the same rules backwards. Pure
functions on dicts: no I/O, no knowledge of any particular PAS. PAS and FHIR paths are
both walked by mappings/paths.py. Why the STU3 -> R4 rules have an engine of their own
(opposite failure policy, one direction, transforms that need a context): mappings/__init__.py.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from mappings.paths import PathError, get_path, set_path
from mappings.spec import FieldRule, RecordMapping
from mappings.transforms import TransformError

Record = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """One field problem: where (a PAS or FHIR path), what was there, and why it is wrong."""

    path: str
    value: Any
    reason: str


class MappingFailed(ValueError):
    """A record with problems; nothing derived from it may be stored."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} field problem(s)")
        self.problems = problems


def _absent(value: Any) -> bool:
    # PAS exports write "" and [] for "not recorded"; both mean absent.
    return value is None or value == "" or value == []


def _one_forward(rule: FieldRule, value: Any) -> Any:
    if not isinstance(value, str):
        raise TransformError("expected text")
    if rule.max_length is not None and len(value) > rule.max_length:
        raise TransformError(f"longer than {rule.max_length} characters")
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        raise TransformError(f"does not match the expected format {rule.pattern.pattern}")
    if rule.transform is not None:
        value = rule.transform.forward(value)
    if rule.values is not None:
        if value not in rule.values:
            raise TransformError(f"not one of the codes {', '.join(rule.values)}")
        value = rule.values[value]
    return value


def forward_value(rule: FieldRule, value: Any) -> Any:
    """The FHIR value for one present PAS value; raises TransformError with the reason."""
    if rule.kind == "list":
        if not isinstance(value, list):
            raise TransformError("expected a list")
        if rule.max_items is not None and len(value) > rule.max_items:
            raise TransformError(f"more than {rule.max_items} items")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_one_forward(rule, item))
            except TransformError as err:
                raise TransformError(f"item {i + 1}: {err}") from None
        return out
    return _one_forward(rule, value)


def _one_backward(rule: FieldRule, value: Any) -> Any:
    if rule.reverse is not None:
        if value not in rule.reverse:
            raise TransformError(f"no PAS code for '{value}'")
        value = rule.reverse[value]
    if rule.transform is not None:
        return rule.transform.backward(value)
    if not isinstance(value, str):
        raise TransformError("expected text")
    return value


def backward_value(rule: FieldRule, value: Any) -> Any:
    if rule.kind == "list":
        if not isinstance(value, list):
            raise TransformError("expected a list")
        return [_one_backward(rule, v) for v in value]
    return _one_backward(rule, value)


def unknown_fields(mapping: RecordMapping, record: Record) -> list[Problem]:
    """PAS fields the profile does not know: reported, never silently dropped."""
    known = mapping.pas_paths
    prefixes = {p.rsplit(".", i)[0] for p in known for i in range(1, p.count(".") + 1)}
    problems: list[Problem] = []

    def walk(obj: dict[str, Any], prefix: str) -> None:
        for key, value in obj.items():
            path = f"{prefix}{key}"
            if path in known:
                continue
            if path in prefixes:
                if isinstance(value, dict):
                    walk(value, f"{path}.")
                elif value is not None:
                    problems.append(Problem(path, value, "expected an object"))
                continue
            problems.append(Problem(path, value, "not a field of this PAS profile"))

    walk(record, "")
    return problems


def to_fhir(mapping: RecordMapping, record: Any) -> Record:
    """PAS record -> FHIR resource; raises MappingFailed listing every problem."""
    if not isinstance(record, dict):
        raise MappingFailed([Problem("", record, "expected a JSON object")])
    problems = unknown_fields(mapping, record) if mapping.strict_fields else []
    converted: list[tuple[FieldRule, Any, Any]] = []
    supplied = {r.pas for r in mapping.fields if not _absent(get_path(record, r.pas))}
    for rule in mapping.fields:
        raw = get_path(record, rule.pas)
        if _absent(raw):
            if rule.required:
                problems.append(Problem(rule.pas, None, "required"))
            continue
        missing = [r for r in rule.requires if r not in supplied]
        if missing:
            problems.append(Problem(rule.pas, raw, f"needs {', '.join(missing)} as well"))
        try:
            converted.append((rule, raw, forward_value(rule, raw)))
        except TransformError as err:
            problems.append(Problem(rule.pas, raw, str(err)))
    if problems:
        raise MappingFailed(problems)
    resource: Record = {"resourceType": mapping.resource_type}
    for path, value in mapping.fixed:
        set_path(resource, path, copy.deepcopy(value))
    for rule, raw, value in converted:
        try:
            set_path(resource, rule.fhir, value)
            for path, constant in rule.fixed:
                set_path(resource, path, copy.deepcopy(constant))
        except PathError as err:
            problems.append(Problem(rule.pas, raw, str(err)))
    if problems:
        raise MappingFailed(problems)
    return resource


def to_pas(mapping: RecordMapping, resource: Record) -> tuple[Record, list[Problem]]:
    """FHIR resource -> PAS record, plus the FHIR values that have no PAS form.

    Never raises on data: NHS records may hold codes a PAS code table lacks, and the
    caller decides whether an unmapped value matters (it is reported by FHIR path).
    """
    record: Record = {}
    problems: list[Problem] = []
    for rule in mapping.fields:
        value = get_path(resource, rule.fhir)
        if _absent(value):
            continue
        try:
            set_path(record, rule.pas, backward_value(rule, value))
        except TransformError as err:
            problems.append(Problem(rule.fhir, value, str(err)))
    return record, problems
