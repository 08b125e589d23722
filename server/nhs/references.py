"""References that resolve, or none at all: the last repair of every NHS answer the
façade serves as a resource of its own.

R4 (bundle.html "Resolving references in Bundles", references.html): a `urn:uuid:` or
`urn:oid:` reference resolves only inside the Bundle that carries its target; outside
one it cannot resolve at all, and client libraries' resolve() then GETs
`[base]/urn:uuid:...`. NHS APIs send such references (BaRS into a booking message that
never reaches us; CPT and GP Connect inside their answer bundles), and a `#id` must name
a resource in the same resource's `contained`.

A reference is kept when it can resolve:
- `#` (the container itself) or `#id` naming one of the resource's contained resources;
- an absolute http(s) URL (it resolves where it points; the façade does not guess);
- a relative `Type/id` whose type is one the caller says the façade serves with such
  ids (`served_types`; None keeps every relative reference).
Anything else dangles: `urn:` references, bare ids with no type, `#id` with nothing
contained under that id, relative references to types not served.

A dangling reference loses its `reference` only: `type`, `identifier`, `display` and
extensions stay (a logical reference is still information). A Reference left with no
identifier, display or extension goes, from its list or as the element, and an extension
whose only value it was goes too. Nothing is invented: a required element that goes
(e.g. a subject) makes the resource fail R4 validation where it enters, which the
caller reports (left out with a warning, or a 502). Pure, no I/O.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping
from typing import Any

Resource = dict[str, Any]

_RELATIVE_RE = re.compile(r"\A([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?\Z")
# What keeps a Reference worth serving once its `reference` is gone.
_LOGICAL_PARTS = ("identifier", "display", "extension")


class _Gone:
    """Marks a value to remove from its parent."""


_GONE = _Gone()


def resolves(reference: str, contained_ids: Collection[str], served_types: Collection[str] | None = None) -> bool:
    """Whether `reference`, in a resource served on its own, can resolve (module docstring)."""
    if reference.startswith("#"):
        return reference == "#" or reference[1:] in contained_ids
    if reference.startswith(("http://", "https://")):
        return True
    match = _RELATIVE_RE.match(reference)
    if match is None:
        return False  # urn:uuid:, urn:oid:, a bare id, anything not a FHIR reference
    return served_types is None or match.group(1) in served_types


def drop_dangling_references(
    resource: Mapping[str, Any], *, served_types: Collection[str] | None = None
) -> tuple[Resource, list[str]]:
    """A copy of `resource` where every reference resolves (module docstring), and what
    was repaired (element paths only, never values)."""
    out: Resource = copy.deepcopy(dict(resource))
    contained_ids = {
        c["id"] for c in out.get("contained") or [] if isinstance(c, dict) and isinstance(c.get("id"), str)
    }
    repairs: list[str] = []

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, list):
            kept = [v for v in (walk(item, path) for item in value) if v is not _GONE]
            return kept if kept or not value else _GONE
        if not isinstance(value, dict):
            return value
        ref = value.get("reference")
        if isinstance(ref, str) and not resolves(ref, contained_ids, served_types):
            value = {k: v for k, v in value.items() if k != "reference"}
            if not any(part in value for part in _LOGICAL_PARTS):
                repairs.append(f"dropped {path} (its reference cannot resolve)")
                return _GONE
            repairs.append(f"dropped {path}.reference (it cannot resolve)")
        had_value = any(k.startswith("value") for k in value)
        out_dict: Resource = {}
        for key, item in value.items():
            walked = walk(item, f"{path}.{key}" if path else key)
            if walked is not _GONE:
                out_dict[key] = walked
        if value and not out_dict:
            return _GONE
        if had_value and "url" in out_dict and set(out_dict) <= {"url", "id"}:
            return _GONE  # an extension whose value was the dropped reference
        return out_dict

    for key in list(out):
        if key in ("resourceType", "id"):
            continue
        walked = walk(out[key], key)
        if walked is _GONE:
            del out[key]
        else:
            out[key] = walked
    return out, repairs
