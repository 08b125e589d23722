"""_summary and _elements: cut a resource dict down, tagged SUBSETTED as FHIR asks.

Which elements are "summary" or mandatory is read once per type from the R4B models'
own metadata (fhir.resources marks summary_element_property and element_required),
so the lists cannot drift from the specification; the request path then only filters
dict keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Iterable
from functools import cache
from typing import Any

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
_ALWAYS = ("resourceType", "id", "meta")


def _model(resource_type: str) -> Any | None:
    module_name = f"fhir.resources.R4B.{resource_type.lower()}"
    try:
        return getattr(importlib.import_module(module_name), resource_type)
    except (ImportError, AttributeError):
        return None


@cache
def summary_elements(resource_type: str) -> frozenset[str]:
    """JSON keys that belong to the summary view of `resource_type`."""
    model = _model(resource_type)
    if model is None:
        return frozenset(_ALWAYS)
    keys = {
        field.alias or name
        for name, field in model.model_fields.items()
        if (field.json_schema_extra or {}).get("summary_element_property")
    }
    return frozenset(keys | set(_ALWAYS) | mandatory_elements(resource_type))


@cache
def mandatory_elements(resource_type: str) -> frozenset[str]:
    """JSON keys with minimum cardinality 1 (kept whatever _elements asks)."""
    model = _model(resource_type)
    if model is None:
        return frozenset()
    keys = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra or {}
        if extra.get("element_required") or extra.get("one_of_many_required") or field.is_required():
            keys.add(field.alias or name)
    return frozenset(keys)


def _tagged(resource: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = tags + [SUBSETTED]
    kept["meta"] = meta
    return kept


def _choice_base(key: str, wanted: Collection[str]) -> bool:
    """Whether `key` is a choice element asked for by its base name (`deceasedBoolean`
    for `deceased`): a prefix of `key` followed by an upper-case letter is in `wanted`.
    Looks up the key's few prefixes in the set rather than scanning every wanted name,
    so the cost does not grow with the length of `_elements`."""
    return any(key[i].isupper() and key[:i] in wanted for i in range(len(key)))


def summarise(resource: dict[str, Any]) -> dict[str, Any]:
    """The `_summary=true` view of one resource."""
    allowed = summary_elements(resource.get("resourceType", ""))
    kept = {k: v for k, v in resource.items() if k in allowed}
    return _tagged(resource, kept)


def select_elements(resource: dict[str, Any], elements: Iterable[str]) -> dict[str, Any]:
    """The `_elements=a,b` view: the named top-level elements plus mandatory ones.

    A choice element is asked for by its base name (`deceased` keeps `deceasedBoolean`).
    """
    wanted = set(elements)
    keep = wanted | set(_ALWAYS) | mandatory_elements(resource.get("resourceType", ""))
    kept = {k: v for k, v in resource.items() if k in keep or _choice_base(k, wanted)}
    return _tagged(resource, kept)


def apply_view(resource: dict[str, Any], summary: str | None, elements: Iterable[str]) -> dict[str, Any]:
    """Apply _summary / _elements to a resource; unchanged when neither is asked for."""
    elements = tuple(elements)
    if summary == "true":
        return summarise(resource)
    if summary == "data":
        return _tagged(resource, {k: v for k, v in resource.items() if k != "text"})
    if summary == "text":
        keep = {"text", "id", "meta", "resourceType"} | mandatory_elements(resource.get("resourceType", ""))
        return _tagged(resource, {k: v for k, v in resource.items() if k in keep})
    if elements:
        return select_elements(resource, elements)
    return resource
