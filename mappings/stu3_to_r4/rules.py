"""Load a declared STU3 -> R4 mapping (YAML) into typed rules, checked at load time.

A typo in a mapping file (unknown transform, unknown value map, a `from` or `to` that is
not a mappings/paths.py path, a rule with both a transform and nested rules) fails when
the file is loaded, not on the first patient whose record happens to exercise that rule.
Reading the file and reporting its mistakes (all of them, naming the file) is shared with
the PAS profiles (mappings/loading.py); the rule shape is this engine's own (see engine.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from mappings.loading import SpecError, check_path, read_yaml
from mappings.stu3_to_r4.transforms import TRANSFORMS


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


def _rule(
    raw: Mapping[str, Any], value_maps: Mapping[str, Mapping[str, Any]], mistakes: list[str], where: str
) -> Rule | None:
    if not isinstance(raw, Mapping) or "from" not in raw or "to" not in raw:
        mistakes.append(f"{where}: a rule needs 'from' and 'to'")
        return None
    unknown = set(raw) - {"from", "to", "transform", "args", "many", "rules", "require"}
    if unknown:
        mistakes.append(f"{where}: unknown rule keys {sorted(unknown)}")
    source = check_path(raw["from"], mistakes, f"{where} from")
    target = check_path(raw["to"], mistakes, f"{where} to")
    nested = tuple(
        rule
        for i, r in enumerate(raw.get("rules") or ())
        if (rule := _rule(r, value_maps, mistakes, f"{where}.{source}[{i}]")) is not None
    )
    transform = raw.get("transform", "copy")
    if raw.get("rules") and "transform" in raw:
        mistakes.append(f"{where}: a rule has either nested 'rules' or a 'transform', not both")
    elif not raw.get("rules") and transform not in TRANSFORMS:
        mistakes.append(f"{where}: unknown transform '{transform}' (known: {', '.join(sorted(TRANSFORMS))})")
    args = dict(raw.get("args") or {})
    if "value_map" in args:
        name = args["value_map"]
        if name in value_maps:
            args["value_map"] = value_maps[name]
        else:
            mistakes.append(f"{where}: unknown value map '{name}'")
    return Rule(
        source=source,
        target=target,
        transform=transform,
        args=args,
        many=bool(raw.get("many", False)),
        rules=nested,
        require=tuple(raw.get("require") or ()),
    )


def parse_mapping(document: Mapping[str, Any], source: str = "<mapping>") -> MappingSpec:
    """Typed rules from an already-parsed mapping document; raises SpecError listing every
    mistake."""
    if not isinstance(document, Mapping):
        raise SpecError(source, ["the file must hold a table"])
    mistakes: list[str] = []
    value_maps = document.get("value_maps") or {}
    if not isinstance(value_maps, Mapping):
        mistakes.append("'value_maps' must be a table")
        value_maps = {}
    for name, vm in value_maps.items():
        if not isinstance(vm, Mapping) or not isinstance(vm.get("codes"), Mapping):
            mistakes.append(f"value map '{name}' needs a 'codes' table")
    rules = tuple(
        rule
        for i, r in enumerate(document.get("rules") or ())
        if (rule := _rule(r, value_maps, mistakes, f"rules[{i}]")) is not None
    )
    if not document.get("rules"):
        mistakes.append("a mapping needs at least one rule")
    known = {"resource", "source_profile", "target_profile", "value_maps", "rules"}
    for key in ("resource", "source_profile", "target_profile"):
        if not isinstance(document.get(key), str):
            mistakes.append(f"the mapping needs '{key}' (text)")
    if mistakes:
        raise SpecError(source, mistakes)
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
    return parse_mapping(read_yaml(path), str(path))
