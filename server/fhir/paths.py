"""Values at a dotted element path of a resource dict (lists flattened). Pure.

A path may be a union of dotted paths, `a|b` as in FHIRPath: one search parameter over
a choice element (occurrenceDateTime|occurrencePeriod) or over two elements
(identifier|groupIdentifier).
"""

from __future__ import annotations

from typing import Any


def branches(path: str) -> list[str]:
    """The dotted paths a (possibly union) path names, in order."""
    return [part.strip() for part in path.split("|")]


def values_at(resource: Any, path: str) -> list[Any]:
    """All values at `path` ("subject", "dosageInstruction.route"), lists flattened; a
    union ("type|subtype") gives the values of each branch in turn."""
    if "|" in path:
        return [value for branch in branches(path) for value in values_at(resource, branch)]
    current: list[Any] = [resource]
    for part in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item:
                value = item[part]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current
