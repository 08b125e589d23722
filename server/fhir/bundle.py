"""Searchset Bundle assembly: pure, from already-found resources to the Bundle dict.

Paging links are built by the caller-supplied `link_for(offset)` so this module knows
nothing about how pages are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

Resource = dict[str, Any]


def full_url(base_url: str, resource: Resource) -> str:
    """Absolute URL of a resource on the façade (never an NHS URL)."""
    return f"{base_url}/{resource['resourceType']}/{resource['id']}"


def search_url(base_url: str, resource_type: str, pairs: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(pairs))
    return f"{base_url}/{resource_type}" + (f"?{query}" if query else "")


def _entry(base_url: str, resource: Resource, mode: str, score: float | None = None) -> dict[str, Any]:
    search: dict[str, Any] = {"mode": mode}
    if score is not None:
        search["score"] = score
    entry: dict[str, Any] = {"resource": resource, "search": search}
    if resource.get("id"):
        entry["fullUrl"] = full_url(base_url, resource)
    else:
        entry["fullUrl"] = f"urn:uuid:{uuid4()}"
    return entry


def searchset(
    *,
    base_url: str,
    matches: Sequence[Resource],
    included: Iterable[Resource] = (),
    outcome: Resource | None = None,
    total: int | None,
    self_url: str,
    offset: int,
    count: int,
    match_count: int,
    link_for: Callable[[int], str] | None,
    scores: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A searchset page. `matches` is this page's matches; `match_count` all matches
    (for next/previous); `total` is what to report (None under _total=none)."""
    links = [{"relation": "self", "url": self_url}]
    if link_for is not None and count > 0:
        links.append({"relation": "first", "url": link_for(0)})
        if offset > 0:
            links.append({"relation": "previous", "url": link_for(max(offset - count, 0))})
        if offset + count < match_count:
            links.append({"relation": "next", "url": link_for(offset + count)})
            last = ((match_count - 1) // count) * count
            links.append({"relation": "last", "url": link_for(last)})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid4()),
        "meta": {"lastUpdated": now_instant()},
        "type": "searchset",
    }
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    scores = scores or {}
    entries = [_entry(base_url, r, "match", scores.get(r.get("id", ""))) for r in matches]
    entries += [_entry(base_url, r, "include") for r in included]
    if outcome is not None:
        entries.append({"fullUrl": f"urn:uuid:{uuid4()}", "resource": outcome, "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle


def now_instant() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
