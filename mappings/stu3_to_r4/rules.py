"""Load a declared STU3 -> R4 mapping (YAML) into typed rules, checked at load time.

A typo in a mapping file (unknown transform, unknown value map, a rule with neither a
transform nor nested rules) fails when the file is loaded, not on the first patient
whose record happens to exercise that rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mappings.stu3_to_r4.transforms import TRANSFORMS


class MappingSpecError(ValueError):
    """The mapping file itself is wrong (raised at load time)."""


@dataclass(frozen=True)
class Rule:
    """One declared line of a mapping: STU3 `source` -> R4 `target` through `transform`."""

    source: str
    target: str
    transform: str = "copy"
    args: Mapping[str, Any] = field(default_factory=dict)
    many: bool = False
    rules: tuple[Rule, ...] = ()
    require: tuple[str, ...] = ()


@dataclass(frozen=True)
class MappingSpec:
    """A whole mapping file: the rules plus the metadata and extra sections it declares."""

    resource: str
    source_profile: str
    target_profile: str
    rules: tuple[Rule, ...]
    value_maps: Mapping[str, Mapping[str, Any]]
    extra: Mapping[str, Any]


def _rule(raw: Mapping[str, Any], value_maps: Mapping[str, Mapping[str, Any]], where: str) -> Rule:
    if not isinstance(raw, Mapping) or "from" not in raw or "to" not in raw:
        raise MappingSpecError(f"{where}: a rule needs 'from' and 'to'")
    unknown = set(raw) - {"from", "to", "transform", "args", "many", "rules", "require"}
    if unknown:
        raise MappingSpecError(f"{where}: unknown rule keys {sorted(unknown)}")
    nested = tuple(_rule(r, value_maps, f"{where}.{raw['from']}") for r in raw.get("rules") or ())
    transform = raw.get("transform", "copy")
    if nested and "transform" in raw:
        raise MappingSpecError(f"{where}: a rule has either nested 'rules' or a 'transform', not both")
    if not nested and transform not in TRANSFORMS:
        raise MappingSpecError(f"{where}: unknown transform '{transform}' (known: {', '.join(sorted(TRANSFORMS))})")
    args = dict(raw.get("args") or {})
    if "value_map" in args:
        name = args["value_map"]
        if name not in value_maps:
            raise MappingSpecError(f"{where}: unknown value map '{name}'")
        args["value_map"] = value_maps[name]
    return Rule(
        source=str(raw["from"]),
        target=str(raw["to"]),
        transform=transform,
        args=args,
        many=bool(raw.get("many", False)),
        rules=nested,
        require=tuple(raw.get("require") or ()),
    )


def parse_mapping(document: Mapping[str, Any]) -> MappingSpec:
    """Typed rules from an already-parsed mapping document."""
    value_maps = document.get("value_maps") or {}
    for name, vm in value_maps.items():
        if not isinstance(vm, Mapping) or not isinstance(vm.get("codes"), Mapping):
            raise MappingSpecError(f"value map '{name}' needs a 'codes' table")
    rules = tuple(_rule(r, value_maps, f"rules[{i}]") for i, r in enumerate(document.get("rules") or ()))
    if not rules:
        raise MappingSpecError("a mapping needs at least one rule")
    known = {"resource", "source_profile", "target_profile", "value_maps", "rules"}
    return MappingSpec(
        resource=document["resource"],
        source_profile=document["source_profile"],
        target_profile=document["target_profile"],
        rules=rules,
        value_maps=value_maps,
        extra={k: v for k, v in document.items() if k not in known and not k.endswith("_rules")},
    )


@cache
def load_mapping(path: Path) -> MappingSpec:
    """A mapping file (parsed once per process). The files live with the source whose
    shape they convert (server/sources/gpconnect/allergy_intolerance.yaml); the engine
    and this loader are shared."""
    with open(path, encoding="utf-8") as handle:
        return parse_mapping(yaml.safe_load(handle))
