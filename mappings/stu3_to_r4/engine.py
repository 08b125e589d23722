"""Apply declared rules to one STU3 resource: the whole engine, kept small on purpose.

Paths are dotted element names (`clinicalStatus.extension`); the source side walks
dicts only (repeating elements are handled by `many` and nested `rules`), the target
side creates the dicts it needs and appends to a list already there. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mappings.stu3_to_r4.rules import Rule
from mappings.stu3_to_r4.transforms import TRANSFORMS, MappingContext

_EMPTY: tuple[Any, ...] = (None, {}, [], "")


def get_path(source: Any, path: str) -> Any:
    """The value at a dotted path of nested dicts, or None."""
    if "." not in path:  # almost every rule: one element name
        return source.get(path) if isinstance(source, dict) else None
    current = source
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def put_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at a dotted path, creating dicts; lists already there are extended."""
    *parents, leaf = path.split(".")
    node = target
    for part in parents:
        node = node.setdefault(part, {})
    if isinstance(node.get(leaf), list) and isinstance(value, list):
        node[leaf].extend(value)
    else:
        node[leaf] = value


def _convert(rule: Rule, value: Any, ctx: MappingContext) -> Any:
    if rule.rules:
        if not isinstance(value, dict):
            return None
        out = apply_rules(rule.rules, value, ctx)
        missing = [name for name in rule.require if out.get(name) in _EMPTY]
        if missing:
            ctx.warn(f"A {rule.source} without {', '.join(missing)} cannot be expressed in R4 and was left out")
            return None
        return out
    return TRANSFORMS[rule.transform](value, rule.args, ctx)


def apply_rules(rules: Sequence[Rule], source: Mapping[str, Any], ctx: MappingContext) -> dict[str, Any]:
    """The R4 element(s) the rules produce from `source` (a resource or backbone element)."""
    target: dict[str, Any] = {}
    for rule in rules:
        value = get_path(source, rule.source)
        if value in _EMPTY:
            continue
        if rule.many:
            items = value if isinstance(value, list) else [value]
            converted = [c for c in (_convert(rule, item, ctx) for item in items) if c not in _EMPTY]
            if converted:
                put_path(target, rule.target, converted)
        else:
            converted = _convert(rule, value, ctx)
            if converted not in _EMPTY:
                put_path(target, rule.target, converted)
    return target
