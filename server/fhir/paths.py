"""Values at a dotted element path of a resource dict (lists flattened). Pure."""
from __future__ import annotations

from typing import Any


def values_at(resource: Any, path: str) -> list[Any]:
    """All values at `path` ("subject", "dosageInstruction.route"), lists flattened."""
    current: list[Any] = [resource]
    for part in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item:
                value = item[part]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current
