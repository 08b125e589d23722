"""Mapping specs: load a profile file (YAML) and check the spec itself before any record
meets it, so a typo in a mapping file fails at start-up with every mistake listed,
not at 3 a.m. on the first patient who has that field.

File shape (see mappings/pas/reference_pas.yaml for a complete one):

    profile: reference-pas            # name, used in meta.source and error messages
    title: ...
    constants: {NAME: value}          # `{NAME}` in any fhir path is replaced by value
    value_maps: {name: {PAS: FHIR}}   # shared code tables, referenced by name
    options: {...}                    # profile-level data for the intake (e.g. HL7 keys)
    records:
      Patient:                        # record name
        resource: Patient             # FHIR resourceType produced
        strict_fields: true           # unknown PAS fields are problems (default true)
        fixed: {fhir.path: value}     # constants written on every resource
        fields:
          - pas: dotted.pas.path      # where the value sits in the PAS record (mappings/paths.py, names only)
            fhir: a.fhir[path=x].value  # mappings/paths.py syntax
            required: true            # forward direction only
            type: string | list       # list = a list of strings (default string)
            pattern: '^regex$'        # checked on the PAS value (each item of a list)
            max_length: 35
            max_items: 5              # list fields
            values: name | {PAS: FHIR}  # a code table; backward uses the first PAS code per FHIR code
            transform: date_dmy       # one of mappings/transforms.py
            fixed: {fhir.path: value} # written alongside when this field is present
            requires: [other.pas.path]  # this field needs that one present
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from mappings.loading import SpecError, check_path, read_yaml
from mappings.paths import PathError, parse_path
from mappings.transforms import TRANSFORMS, Transform

MAPPINGS_DIR = Path(__file__).resolve().parent

_FIELD_KEYS = {
    "pas",
    "fhir",
    "required",
    "type",
    "pattern",
    "max_length",
    "max_items",
    "values",
    "transform",
    "fixed",
    "requires",
    "doc",
}
_RECORD_KEYS = {"resource", "strict_fields", "fixed", "fields", "doc"}
_TOP_KEYS = {"profile", "title", "description", "constants", "value_maps", "options", "records"}


@dataclass(frozen=True)
class FieldRule:
    pas: str
    fhir: str
    required: bool = False
    kind: Literal["string", "list"] = "string"
    pattern: re.Pattern[str] | None = None
    max_length: int | None = None
    max_items: int | None = None
    values: dict[str, str] | None = None
    reverse: dict[str, str] | None = None
    transform: Transform | None = None
    fixed: tuple[tuple[str, Any], ...] = ()
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordMapping:
    name: str
    resource_type: str
    fields: tuple[FieldRule, ...]
    fixed: tuple[tuple[str, Any], ...] = ()
    strict_fields: bool = True

    def rule(self, pas: str) -> FieldRule:
        return next(r for r in self.fields if r.pas == pas)

    @property
    def pas_paths(self) -> frozenset[str]:
        return frozenset(r.pas for r in self.fields)


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    records: dict[str, RecordMapping]
    constants: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def record(self, name: str) -> RecordMapping:
        return self.records[name]


def _substitute(text: str, constants: dict[str, str], mistakes: list[str], where: str) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in constants:
            mistakes.append(f"{where}: unknown constant {{{name}}}")
            return match.group(0)
        return constants[name]

    return re.sub(r"\{([A-Z_][A-Z0-9_]*)\}", repl, text)


def _fhir_path(raw: Any, constants: dict[str, str], mistakes: list[str], where: str) -> str:
    if not isinstance(raw, str):
        mistakes.append(f"{where}: a FHIR path must be text")
        return ""
    return check_path(_substitute(raw, constants, mistakes, where), mistakes, where)


def _is_record_path(raw: Any) -> bool:
    """A PAS path names keys only: a PAS record has no FHIR lists to select items from."""
    try:
        return isinstance(raw, str) and not any(seg.selects_item for seg in parse_path(raw))
    except PathError:
        return False


def _code_table(raw: Any, maps: dict[str, dict[str, str]], mistakes: list[str], where: str) -> dict[str, str] | None:
    if isinstance(raw, str):
        if raw not in maps:
            mistakes.append(f"{where}: unknown value map '{raw}'")
            return None
        return maps[raw]
    if not isinstance(raw, dict) or not raw:
        mistakes.append(f"{where}: values must name a value map or be a non-empty table")
        return None
    return _string_table(raw, mistakes, where)


def _string_table(raw: dict[Any, Any], mistakes: list[str], where: str) -> dict[str, str]:
    # YAML turns 01 into 1 and N into False: insist on quoted strings so codes survive.
    bad = [k for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        mistakes.append(f"{where}: codes must be quoted strings (YAML read {bad[:3]!r})")
    return {str(k): str(v) for k, v in raw.items()}


def _fixed(raw: Any, constants: dict[str, str], mistakes: list[str], where: str) -> tuple[tuple[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        mistakes.append(f"{where}: fixed must be a table of FHIR path: value")
        return ()
    out = []
    for path, value in raw.items():
        if isinstance(value, str):
            value = _substitute(value, constants, mistakes, where)
        out.append((_fhir_path(path, constants, mistakes, f"{where}.fixed"), value))
    return tuple(out)


def _is_table(raw: Any, allowed: set[str], not_table: str, where: str, mistakes: list[str]) -> bool:
    """A spec entry must be a mapping; keys outside `allowed` are reported (not fatal)."""
    if not isinstance(raw, dict):
        mistakes.append(not_table)
        return False
    extra = set(raw) - allowed
    if extra:
        mistakes.append(f"{where}: unknown keys {sorted(extra)}")
    return True


def _field(
    raw: Any, maps: dict[str, dict[str, str]], constants: dict[str, str], mistakes: list[str], where: str
) -> FieldRule | None:
    if not _is_table(raw, _FIELD_KEYS, f"{where}: a field rule must be a table", where, mistakes):
        return None
    pas = raw.get("pas")
    if not _is_record_path(pas):
        mistakes.append(f"{where}: 'pas' must be a dotted path of names")
        return None
    where = f"{where} ({pas})"
    fhir = _fhir_path(raw.get("fhir"), constants, mistakes, where)
    kind = raw.get("type", "string")
    if kind not in ("string", "list"):
        mistakes.append(f"{where}: type must be string or list")
    pattern = None
    if "pattern" in raw:
        try:
            pattern = re.compile(str(raw["pattern"]))
        except re.error as err:
            mistakes.append(f"{where}: bad pattern ({err})")
    transform = None
    if "transform" in raw:
        transform = TRANSFORMS.get(raw["transform"])
        if transform is None:
            mistakes.append(f"{where}: unknown transform '{raw['transform']}' (known: {', '.join(TRANSFORMS)})")
    values = _code_table(raw["values"], maps, mistakes, where) if "values" in raw else None
    reverse: dict[str, str] | None = None
    if values:
        reverse = {}
        for pas_code, fhir_code in values.items():
            reverse.setdefault(fhir_code, pas_code)  # first PAS code listed wins backward
    for key in ("max_length", "max_items"):
        if key in raw and (not isinstance(raw[key], int) or raw[key] < 1):
            mistakes.append(f"{where}: {key} must be a positive integer")
    requires = raw.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        mistakes.append(f"{where}: requires must be a list of PAS paths")
        requires = []
    return FieldRule(
        pas=pas,
        fhir=fhir,
        required=bool(raw.get("required", False)),
        kind=kind,
        pattern=pattern,
        max_length=raw.get("max_length"),
        max_items=raw.get("max_items"),
        values=values,
        reverse=reverse,
        transform=transform,
        fixed=_fixed(raw.get("fixed"), constants, mistakes, where),
        requires=tuple(requires),
    )


def _record(
    name: str, raw: Any, maps: dict[str, dict[str, str]], constants: dict[str, str], mistakes: list[str]
) -> RecordMapping | None:
    where = f"records.{name}"
    if not _is_table(raw, _RECORD_KEYS, f"{where}: must be a table", where, mistakes):
        return None
    resource_type = raw.get("resource")
    if not isinstance(resource_type, str) or not re.match(r"^[A-Z][A-Za-z]+$", resource_type):
        mistakes.append(f"{where}: 'resource' must be a FHIR resource type")
        resource_type = "Unknown"
    fields_raw = raw.get("fields")
    if not isinstance(fields_raw, list) or not fields_raw:
        mistakes.append(f"{where}: 'fields' must be a non-empty list")
        fields_raw = []
    rules = [r for i, f in enumerate(fields_raw) if (r := _field(f, maps, constants, mistakes, f"{where}.fields[{i}]"))]
    names = [r.pas for r in rules]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        mistakes.append(f"{where}: PAS field '{dup}' is mapped twice")
    for rule in rules:
        for needed in rule.requires:
            if needed not in names:
                mistakes.append(f"{where} ({rule.pas}): requires unknown field '{needed}'")
    return RecordMapping(
        name=name,
        resource_type=resource_type,
        fields=tuple(rules),
        fixed=_fixed(raw.get("fixed"), constants, mistakes, where),
        strict_fields=bool(raw.get("strict_fields", True)),
    )


def parse_profile(raw: Any, source: str = "<spec>") -> Profile:
    """Check and compile a spec already read from YAML; raises SpecError listing every mistake."""
    mistakes: list[str] = []
    if not isinstance(raw, dict):
        raise SpecError(source, ["the file must hold a table"])
    extra = set(raw) - _TOP_KEYS
    if extra:
        mistakes.append(f"unknown top-level keys {sorted(extra)}")
    name = raw.get("profile")
    if not isinstance(name, str) or not re.match(r"^[a-z0-9][a-z0-9-]*$", name):
        mistakes.append("'profile' must be a lower-case name (letters, digits, hyphens)")
        name = "unnamed"
    constants = raw.get("constants") or {}
    if not isinstance(constants, dict):
        mistakes.append("'constants' must be a table")
        constants = {}
    constants = _string_table(constants, mistakes, "constants")
    maps_raw = raw.get("value_maps") or {}
    maps = {}
    if not isinstance(maps_raw, dict):
        mistakes.append("'value_maps' must be a table")
    else:
        for map_name, table in maps_raw.items():
            if not isinstance(table, dict) or not table:
                mistakes.append(f"value_maps.{map_name}: must be a non-empty table")
                continue
            maps[str(map_name)] = _string_table(table, mistakes, f"value_maps.{map_name}")
    records_raw = raw.get("records")
    records = {}
    if not isinstance(records_raw, dict) or not records_raw:
        mistakes.append("'records' must be a non-empty table")
    else:
        for rec_name, rec in records_raw.items():
            compiled = _record(str(rec_name), rec, maps, constants, mistakes)
            if compiled:
                records[str(rec_name)] = compiled
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        mistakes.append("'options' must be a table")
        options = {}
    if mistakes:
        raise SpecError(source, mistakes)
    return Profile(name=name, title=str(raw.get("title", name)), records=records, constants=constants, options=options)


@lru_cache(maxsize=16)
def load_profile(path: str | Path) -> Profile:
    """Read and compile a profile file; a bare name is looked up under mappings/ (e.g. 'pas/reference_pas')."""
    file = Path(path)
    if not file.suffix:
        file = MAPPINGS_DIR / f"{path}.yaml"
    return parse_profile(read_yaml(file), str(file))
