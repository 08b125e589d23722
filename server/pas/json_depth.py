"""How deeply a decoded JSON value nests, checked without recursion.

orjson reads up to 1,024 levels but writes at most 255, and repr() of a few hundred
levels exhausts Python's recursion limit: a PAS body nested 300 deep was accepted, and
the field problem echoing it back then failed to render (a 500). A PAS record nests a
handful of levels, so anything deeper is refused before a mapping or an error sees it.
"""

from __future__ import annotations

from typing import Any

MAX_JSON_DEPTH = 32  # a PAS record (record > list > item > coding) needs under ten


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists/objects in `value` nest more than `limit` levels (iterative, so a
    value of any depth is measured without touching the recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def echoable(value: Any, limit: int = 8) -> Any:
    """`value` as a field problem may echo it: itself when shallow, else a short note."""
    return value if not nested_deeper_than(value, limit) else f"(a value nested more than {limit} levels deep)"
