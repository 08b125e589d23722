"""A tiny FHIR path syntax for mapping specs: read a value from, or write one into, a
resource held as plain dicts and lists.

Grammar (segments joined by dots; a bracket may hold dots, e.g. a system URL):

    path     := segment ("." segment)*
    segment  := name | name "[" index "]" | name "[" key "=" value "]"

- `name` reads or writes a key of an object (`birthDate`, `valueCodeableConcept`).
- `name[2]` is the item at that index of a list (`name[0]`, `line[1]`).
- `name[key=value]` is the first item of a list whose `key` equals `value`
  (`identifier[system=https://fhir.nhs.uk/Id/nhs-number]`, `telecom[system=phone]`); on
  write, a missing item is appended as `{key: value}`, so the selector also writes the
  discriminator (the identifier system, the telecom system, the extension url).

A final `name` may hold a list (`given`), which is read and written whole. That is
the whole language: no functions, no wildcards, no expressions, so a reviewer can read
every path in a mapping file without a manual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_SEGMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<sel>[^\]]+)\])?$")


class PathError(ValueError):
    """A path that cannot be parsed, or a write the data's shape does not allow."""


@dataclass(frozen=True)
class Segment:
    name: str
    index: int | None = None
    key: str | None = None
    value: str | None = None

    @property
    def selects_item(self) -> bool:
        return self.index is not None or self.key is not None

    def text(self) -> str:
        if self.index is not None:
            return f"{self.name}[{self.index}]"
        if self.key is not None:
            return f"{self.name}[{self.key}={self.value}]"
        return self.name


def _split(path: str) -> list[str]:
    """Split on dots outside brackets."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise PathError(f"unbalanced ']' in path {path!r}")
        if ch == "." and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise PathError(f"unbalanced '[' in path {path!r}")
    parts.append("".join(current))
    return parts


@lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[Segment, ...]:
    """Parse a path once (cached); raises PathError naming the bad segment."""
    if not path:
        raise PathError("empty path")
    segments = []
    for raw in _split(path):
        match = _SEGMENT.match(raw)
        if not match:
            raise PathError(f"bad segment {raw!r} in path {path!r}")
        sel = match.group("sel")
        if sel is None:
            segments.append(Segment(match.group("name")))
        elif sel.isdigit():
            segments.append(Segment(match.group("name"), index=int(sel)))
        elif "=" in sel:
            key, _, value = sel.partition("=")
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key) or not value:
                raise PathError(f"bad selector [{sel}] in path {path!r}")
            segments.append(Segment(match.group("name"), key=key, value=value))
        else:
            raise PathError(f"bad selector [{sel}] in path {path!r}")
    return tuple(segments)


def _pick(items: Any, seg: Segment) -> Any:
    if not isinstance(items, list):
        return None
    if seg.index is not None:
        return items[seg.index] if seg.index < len(items) else None
    return next((i for i in items if isinstance(i, dict) and i.get(seg.key) == seg.value), None)


def get_path(resource: Any, path: str) -> Any:
    """The value at `path`, or None when any step is missing."""
    node = resource
    for seg in parse_path(path):
        if not isinstance(node, dict):
            return None
        node = node.get(seg.name)
        if seg.selects_item:
            node = _pick(node, seg)
        if node is None:
            return None
    return node


def set_path(resource: dict[str, Any], path: str, value: Any) -> None:
    """Write `value` at `path`, creating objects and list items on the way.

    An index may only append (index == current length): a gap (line[2] before line[1])
    would leave a null in a FHIR list, so it is refused with a PathError.
    """
    segments = parse_path(path)
    node: Any = resource
    for position, seg in enumerate(segments):
        last = position == len(segments) - 1
        if not isinstance(node, dict):
            raise PathError(f"{seg.text()} is not inside an object")
        if not seg.selects_item:
            if last:
                node[seg.name] = value
                return
            node = node.setdefault(seg.name, {})
            continue
        items = node.setdefault(seg.name, [])
        if not isinstance(items, list):
            raise PathError(f"{seg.name} is not a list")
        if seg.index is not None:
            if seg.index > len(items):
                raise PathError(f"{seg.text()} cannot be written before {seg.name}[{len(items)}]")
            if seg.index == len(items):
                items.append(value if last else {})
            elif last:
                items[seg.index] = value
            if last:
                return
            node = items[seg.index]
            continue
        if last:
            raise PathError(f"{seg.text()} selects an object; write one of its elements")
        item = _pick(items, seg)
        if item is None:
            item = {seg.key: seg.value}
            items.append(item)
        node = item
