"""Apply declared rules to one STU3 resource: the whole engine, kept small on purpose.

Paths are mappings/paths.py paths (`clinicalStatus.extension`), the same syntax as the
PAS profiles'. The source side reads one value (repeating elements are handled by `many`
and nested `rules`); the target side creates the objects it needs and extends a list
already there. What R4 cannot hold is dropped with a warning, never refused: the
opposite of the PAS engine's policy, one reason the two engines stay apart
(mappings/__init__.py). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mappings.paths import get_path, set_path
from mappings.stu3_to_r4.rules import Rule
from mappings.stu3_to_r4.transforms import TRANSFORMS, MappingContext

_EMPTY: tuple[Any, ...] = (None, {}, [], "")


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
                set_path(target, rule.target, converted, extend=True)
        else:
            converted = _convert(rule, value, ctx)
            if converted not in _EMPTY:
                set_path(target, rule.target, converted, extend=True)
    return target
