"""_include and _revinclude: resolve a page's references, both ways, through the registry.

_include follows the references a page's matches make (registry read). _revinclude runs
the source type's own search with `param=Type/id` for each match on the page (e.g.
Patient ← MedicationRequest:patient): NHS APIs have no reverse lookup, so the search
the provider already implements is the only honest way to find them.

Only the page being returned is resolved (an include for page 5 is fetched when page 5
is asked for). A reference or reverse search that cannot be resolved does not fail the
search: it becomes a warning in the searchset's OperationOutcome entry.

Fan-out is capped per page (FanOutBudget: FACADE_MAX_INCLUDE_READS reads and
FACADE_MAX_REVINCLUDE_SEARCHES reverse searches), because each one may be an NHS call
and `_revinclude` multiplies them by the page size: 4 patients with 3 rev-includes
started 17 NHS requests. What is over the cap is not fetched and is never silently
dropped: one warning (`too-costly`) per call says how many were left out, which, and why.
Reverse searches run match by match, so the first matches of the page are complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mappings.paths import values_at
from server.fhir.outcome import Issue, issue
from server.fhir.search_request import Include, parse_search
from server.providers.base import RequestContext, ResourceProvider
from server.providers.failures import PROVIDER_FAILURES, as_fhir_error
from server.providers.registry import ProviderRegistry

LISTED = 10  # references named in a left-out warning; the rest are counted


@dataclass
class FanOutBudget:
    """What one page may still start: `_include` reads and `_revinclude` searches. One
    budget per page, shared by every resolve call for it (the handler makes it from settings)."""

    max_reads: int
    max_searches: int
    reads_started: int = field(default=0, init=False)
    searches_started: int = field(default=0, init=False)

    def take_reads(self, wanted: int) -> int:
        granted = max(0, min(wanted, self.max_reads - self.reads_started))
        self.reads_started += granted
        return granted

    def take_searches(self, wanted: int) -> int:
        granted = max(0, min(wanted, self.max_searches - self.searches_started))
        self.searches_started += granted
        return granted


def _named(refs: Sequence[str]) -> str:
    unique = list(dict.fromkeys(refs))
    text = ", ".join(unique[:LISTED])
    return text + (f" and {len(unique) - LISTED} more" if len(unique) > LISTED else "")


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
    *,
    budget: FanOutBudget | None = None,
) -> tuple[list[dict[str, Any]], list[Issue]]:
    """The resources the page's matches reference, read through the registry (at most what
    `budget` allows; None = no cap), and warnings for what could not or may not be read."""
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
        except PROVIDER_FAILURES as failure:
            err = as_fhir_error(failure)
            return issue(
                "incomplete", f"Included {rtype}/{rid} could not be read: {err.diagnostics}", severity="warning"
            )

    issues: list[Issue] = []
    if budget is not None:
        readable = [pair for pair in wanted if registry.find(pair[0]) is not None]  # others cost no read
        left_out = readable[budget.take_reads(len(readable)) :]
        if left_out:
            skipped = set(left_out)
            wanted = [pair for pair in wanted if pair not in skipped]
            issues.append(
                issue(
                    "too-costly",
                    f"_include: {len(left_out)} referenced resource(s) not read "
                    f"({_named([f'{t}/{i}' for t, i in left_out])}): one page may start at most {budget.max_reads} "
                    "include reads (FACADE_MAX_INCLUDE_READS); ask for a smaller _count or read them directly",
                    severity="warning",
                )
            )
    results = await asyncio.gather(*(fetch(t, i) for t, i in wanted))
    included = [r for r in results if r.get("resourceType")]
    issues += [r for r in results if not r.get("resourceType")]
    return included, issues


def available_rev_includes(resource_type: str, registry: ProviderRegistry) -> tuple[str, ...]:
    """The `Source:param` rev-includes of `resource_type`: every registered type's reference
    search parameter that declares `resource_type` among its targets (as HAPI FHIR's
    capability provider derives them). Nothing is listed by hand, so a new source's
    references show up on the types they point at, and a deployment without a type
    advertises no reverse search through it; the CapabilityStatement, OpenAPI and the
    search parser all read this."""
    return tuple(
        f"{provider.resource_type}:{spec.name}"
        for provider in registry
        for spec in provider.search_params
        if spec.type == "reference" and resource_type in spec.target_types
    )


async def resolve_rev_includes(
    matches: Sequence[dict[str, Any]],
    rev_includes: Sequence[Include],
    registry: ProviderRegistry,
    ctx: RequestContext,
    *,
    default_count: int,
    max_count: int,
    budget: FanOutBudget | None = None,
) -> tuple[list[dict[str, Any]], list[Issue]]:
    """Resources of the source types that reference a match on this page, found by running
    the source provider's search `param=Type/id` once per (match, rev-include), match by
    match, at most as many as `budget` allows (None = no cap)."""

    async def run(inc: Include, resource: dict[str, Any]) -> list[dict[str, Any]] | Issue:
        ref = f"{resource.get('resourceType')}/{resource.get('id')}"
        source = registry.find(inc.source)
        if source is None:
            return issue(
                "not-supported", f"_revinclude={inc.text()}: {inc.source} is not served here", severity="warning"
            )
        try:
            request = parse_search([(inc.param, ref)], source.declaration(default_count, max_count))
            return list((await source.search(request, ctx)).matches)
        except PROVIDER_FAILURES as failure:
            err = as_fhir_error(failure)
            return issue(
                "incomplete",
                f"_revinclude={inc.text()} for {ref} could not be resolved ({err.status}): {err.diagnostics}",
                severity="warning",
            )

    jobs = [
        (inc, r) for r in matches for inc in rev_includes if inc.target is None or inc.target == r.get("resourceType")
    ]
    issues: list[Issue] = []
    if budget is not None:
        runnable = [n for n, (inc, _) in enumerate(jobs) if registry.find(inc.source) is not None]
        skipped = set(runnable[budget.take_searches(len(runnable)) :])
        left_out = [job for n, job in enumerate(jobs) if n in skipped]
        if left_out:
            jobs = [job for n, job in enumerate(jobs) if n not in skipped]
            kinds = ", ".join(dict.fromkeys(inc.text() for inc, _ in left_out))
            refs = [f"{r.get('resourceType')}/{r.get('id')}" for _, r in left_out]
            issues.append(
                issue(
                    "too-costly",
                    f"_revinclude={kinds}: {len(left_out)} reverse search(es) not run, for {_named(refs)}: one page "
                    f"may start at most {budget.max_searches} (FACADE_MAX_REVINCLUDE_SEARCHES); "
                    "ask for a smaller _count",
                    severity="warning",
                )
            )
    results = await asyncio.gather(*(run(inc, r) for inc, r in jobs))
    seen = {(m.get("resourceType"), m.get("id")) for m in matches}
    found: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, dict):
            issues.append(result)
            continue
        for resource in result:
            key = (resource.get("resourceType"), resource.get("id"))
            if key not in seen:
                seen.add(key)
                found.append(resource)
    return found, issues
