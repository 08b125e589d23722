"""The one path syntax: read a value from, or write one into, a resource or record held as
plain dicts and lists. Pure.

Every walker over a FHIR-ish tree goes through here (issue 9): the PAS mapping engine in
both directions and its HL7 v2 intake (mappings/engine.py, server/pas/hl7_intake.py), the
STU3 -> R4 rules engine (mappings/stu3_to_r4/engine.py), and the FHIR REST layer's local
matcher, _sort and _include (server/fhir/). One grammar, parsed once and checked where it is
declared, so `a.b[0]` means the same in a mapping file and in a search parameter.

Grammar (segments joined by dots; a bracket may hold dots, e.g. a system URL):

    union    := path ("|" path)*                      read with `values_at` only
    path     := segment ("." segment)*
    segment  := name | name "[" index "]" | name "[" key "=" value "]"
    name     := [A-Za-z_][A-Za-z0-9_]* | [0-9]+

- `name` reads or writes a key of an object (`birthDate`, `valueCodeableConcept`). An
  all-digit name is a key too: HL7 v2 fields are numbered (`PID.7.1` in a PAS record).
- `name[2]` is the item at that index of a list (`name[0]`, `line[1]`).
- `name[key=value]` is an item of a list whose `key` equals `value`
  (`identifier[system=https://fhir.nhs.uk/Id/nhs-number]`, `telecom[system=phone]`); on
  write, a missing item is appended as `{key: value}`, so the selector also writes the
  discriminator (the identifier system, the telecom system, the extension url).
- `a|b` is a FHIRPath union: one search parameter over the typed forms of a choice
  element (`occurrenceDateTime|occurrencePeriod`) or over two elements
  (`identifier|groupIdentifier`). There is no `[x]`: a choice element is named by its
  typed forms, so a reader sees which types are meant.

Two ways to read, because the callers ask two questions:
- `get_path`: the ONE value at the path, or None when a step is missing or is not an
  object. A mapping copies an element whole, a list included (`given`), and a list met on
  the way is not looked into unless a selector says which item.
- `values_at`: EVERY value at the path, lists flattened at each step (`name.family` over
  all names), as FHIRPath and search evaluate it; a selector picks within each list it
  meets (an index the item at that index, `[key=value]` every matching item).

No functions, no wildcards, no expressions, so a reviewer can read every path in a
mapping file or a search parameter declaration without a manual.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_SEGMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?:\[(?P<sel>[^\]]+)\])?$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PathError(ValueError):
    """A path that cannot be parsed, or a write the data's shape does not allow."""


@dataclass(frozen=True)
class Segment:
    """One step of a path: a key, optionally selecting one list item by index or by key."""

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


def _split(path: str, separator: str) -> list[str]:
    """Split on `separator` outside brackets (a selector value may hold dots or bars)."""
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
        if ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise PathError(f"unbalanced '[' in path {path!r}")
    parts.append("".join(current))
    return parts


def branches(path: str) -> list[str]:
    """The paths a (possibly union) path names, in order: `a | b` -> ['a', 'b']."""
    return [part.strip() for part in _split(path, "|")]


def _segment(raw: str, path: str) -> Segment:
    match = _SEGMENT.match(raw)
    if not match:
        raise PathError(f"bad segment {raw!r} in path {path!r}")
    name, sel = match.group("name"), match.group("sel")
    if sel is None:
        return Segment(name)
    if sel.isdigit():
        return Segment(name, index=int(sel))
    key, equals, value = sel.partition("=")
    if not equals or not _KEY.match(key) or not value:
        raise PathError(f"bad selector [{sel}] in path {path!r}")
    return Segment(name, key=key, value=value)


@lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[Segment, ...]:
    """Parse one path once (cached); raises PathError naming the bad segment. A union
    is refused here: it names several values, so only `values_at` reads one."""
    if not path:
        raise PathError("empty path")
    if len(_split(path, "|")) > 1:
        raise PathError(f"{path!r} is a union of paths: it can be read with values_at, not read as one or written")
    return tuple(_segment(raw, path) for raw in _split(path, "."))


@lru_cache(maxsize=4096)
def parse_union(path: str) -> tuple[tuple[Segment, ...], ...]:
    """Parse every branch of a read path (`a|b`, or a single path); raises PathError."""
    return tuple(parse_path(branch) for branch in branches(path))


def _select(items: Any, seg: Segment) -> Iterator[Any]:
    """The items of a list a selector picks (nothing when `items` is not a list)."""
    if not isinstance(items, list):
        return
    if seg.index is not None:
        if seg.index < len(items):
            yield items[seg.index]
        return
    yield from (i for i in items if isinstance(i, dict) and i.get(seg.key) == seg.value)


def get_path(resource: Any, path: str) -> Any:
    """The value at `path`, or None when any step is missing or not an object; the
    first matching item for a `[key=value]` selector."""
    node = resource
    for seg in parse_path(path):
        if not isinstance(node, dict):
            return None
        node = node.get(seg.name)
        if seg.selects_item:
            node = next(_select(node, seg), None)
        if node is None:
            return None
    return node


def values_at(resource: Any, path: str) -> list[Any]:
    """All values at `path` ("subject", "dosageInstruction.route"), lists flattened; a
    union ("type|subtype") gives the values of each branch in turn. No path, no values."""
    if not path:
        return []
    found: list[Any] = []
    for segments in parse_union(path):
        current: list[Any] = [resource]
        for seg in segments:
            nxt: list[Any] = []
            for item in current:
                if not isinstance(item, dict) or seg.name not in item:
                    continue
                value = item[seg.name]
                if seg.selects_item:
                    nxt.extend(_select(value, seg))
                else:
                    nxt.extend(value if isinstance(value, list) else [value])
            current = nxt
        found.extend(current)
    return found


def set_path(resource: dict[str, Any], path: str, value: Any, *, extend: bool = False) -> None:
    """Write `value` at `path`, creating objects and list items on the way.

    An index may only append (index == current length): a gap (line[2] before line[1])
    would leave a null in a FHIR list, so it is refused with a PathError. With `extend`,
    a list written where a list already is extends it (two STU3 rules writing one R4
    list); otherwise the last step is overwritten.
    """
    segments = parse_path(path)
    node: Any = resource
    for position, seg in enumerate(segments):
        last = position == len(segments) - 1
        if not isinstance(node, dict):
            raise PathError(f"{seg.text()} is not inside an object")
        if not seg.selects_item:
            if not last:
                node = node.setdefault(seg.name, {})
            elif extend and isinstance(node.get(seg.name), list) and isinstance(value, list):
                node[seg.name].extend(value)
            else:
                node[seg.name] = value
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
            node = items[seg.index]
            continue
        if last:
            raise PathError(f"{seg.text()} selects an object; write one of its elements")
        item = next(_select(items, seg), None)
        if item is None:
            item = {seg.key: seg.value}
            items.append(item)
        node = item
