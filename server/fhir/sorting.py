"""_sort over already-fetched matches, by the declared element path of a parameter.

Dates sort by the start of the range they denote; resources without a value go last
whichever the direction, so `-date` lists the newest first and the undated at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from mappings.paths import values_at
from server.fhir.search_match import date_spans
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SortKey

_MIN = datetime.min.replace(tzinfo=timezone.utc)


def _key(resource: dict[str, Any], spec: SearchParamSpec) -> Any:
    values = values_at(resource, spec.path or "")
    if spec.type == "date":
        starts = [span[0] for v in values for span in date_spans(v)]  # a Period sorts by its start
        return min(starts) if starts else None
    texts = []
    for v in values:
        if isinstance(v, str):
            texts.append(v.casefold())
        elif isinstance(v, dict):
            texts.append(str(v.get("family") or v.get("text") or "").casefold())
    return min(texts) if texts else None


def sort_resources(
    resources: Sequence[dict[str, Any]], keys: Sequence[SortKey], specs: dict[str, SearchParamSpec]
) -> list[dict[str, Any]]:
    """Stable multi-key sort; keys apply in order (the first is the primary key)."""
    ordered = list(resources)
    for sort_key in reversed(keys):
        spec = specs[sort_key.param]
        present = [(r, _key(r, spec)) for r in ordered]
        with_value = [p for p in present if p[1] is not None]
        without = [p[0] for p in present if p[1] is None]
        with_value.sort(key=lambda p: p[1], reverse=sort_key.descending)
        ordered = [p[0] for p in with_value] + without
    return ordered
