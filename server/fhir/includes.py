"""_include: resolve the references a page's matches make, through the registry.

Only the page being returned is resolved (an include for page 5 is fetched when page 5
is asked for). A reference that cannot be resolved does not fail the search: it
becomes a warning in the searchset's OperationOutcome entry.
"""
from __future__ import annotations

import asyncio
from typing import Any, Sequence

from server.fhir.errors import FHIRError
from server.fhir.outcome import Issue, issue
from server.fhir.paths import values_at
from server.fhir.search_request import Include
from server.providers.base import RequestContext, ResourceProvider
from server.providers.registry import ProviderRegistry


def referenced(resource: dict[str, Any], path: str, target: str | None, base_url: str) -> list[tuple[str, str]]:
    """(type, id) pairs of the literal references at `path` (relative or on our base URL)."""
    found: list[tuple[str, str]] = []
    for value in values_at(resource, path):
        ref = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(ref, str):
            continue
        if ref.startswith(base_url + "/"):
            ref = ref[len(base_url) + 1 :]
        parts = ref.split("/")
        if len(parts) != 2 or (target and parts[0] != target):
            continue
        found.append((parts[0], parts[1]))
    return found


async def resolve_includes(
    matches: Sequence[dict[str, Any]],
    includes: Sequence[Include],
    provider: ResourceProvider,
    registry: ProviderRegistry,
    ctx: RequestContext,
) -> tuple[list[dict[str, Any]], list[Issue]]:
    wanted: list[tuple[str, str]] = []
    seen = {(m.get("resourceType"), m.get("id")) for m in matches}
    for inc in includes:
        spec = provider.search_param(inc.param)
        if spec is None or not spec.path:
            continue
        for resource in matches:
            for pair in referenced(resource, spec.path, inc.target, ctx.base_url):
                if pair not in seen:
                    seen.add(pair)
                    wanted.append(pair)

    async def fetch(rtype: str, rid: str) -> dict[str, Any] | Issue:
        target = registry.find(rtype)
        if target is None:
            return issue("not-supported", f"Included {rtype}/{rid} is not served here", severity="warning")
        try:
            return await target.read(rid, ctx)
        except FHIRError as err:
            return issue("incomplete", f"Included {rtype}/{rid} could not be read: {err.diagnostics}",
                         severity="warning")

    results = await asyncio.gather(*(fetch(t, i) for t, i in wanted))
    included = [r for r in results if r.get("resourceType")]
    issues = [r for r in results if not r.get("resourceType")]
    return included, issues
