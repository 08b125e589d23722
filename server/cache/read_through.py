"""Read-through caching for any provider: lookup, single-flight refresh, stale-if-error,
restricted-patient purge and superseded re-keying, in one place for every type.

A read or search goes: parse the client's Cache-Control -> look the key up -> a fresh
entry is a HIT -> otherwise one upstream call per key (single-flight) whose answer is
written back (MISS, or REVALIDATED when an entry existed) -> if upstream fails with a
gateway error (502/503/504: timeout, outage, open circuit) and a copy younger than the
stale-if-error maximum exists, that copy is served as STALE with a warning. A provider
fails with a FHIRError or an UpstreamError (server.providers.failures): both are judged
by the status the client would see.

Providers may implement `read_if_changed(id, etag, ctx)` (returns None when the upstream
answers "not modified") to revalidate with the upstream ETag; the NHS APIs behind the
façade today document no conditional GET (PDS's ETag serves If-Match on PATCH), so a
stale entry is refetched in full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from server import metrics, request_trace
from server.cache.policy import (
    CachePolicy,
    CacheState,
    Directives,
    age_seconds,
    parse_cache_control,
    patients_in,
    read_key,
    restricted_patient_ids,
    search_key,
)
from server.cache.store import CacheKey, CacheStore, Document
from server.fhir.errors import FHIRError
from server.fhir.outcome import issue
from server.fhir.response_notes import add_response_headers
from server.fhir.search_request import SearchRequest
from server.fhir.versioning import etag
from server.nhs.single_flight import SingleFlight
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult
from server.providers.failures import PROVIDER_FAILURES, as_fhir_error

log = logging.getLogger("facade.cache")

GATEWAY_FAILURES = frozenset({502, 503, 504})
STALE_WARNING = '110 - "Response is Stale", 111 - "Revalidation Failed"'
# How long a finished refresh stays available to a caller whose cache lookup began
# before it finished (and so missed the entry it wrote): one upstream call, not two.
FLIGHT_REUSE_SECONDS = 2.0


@runtime_checkable
class ConditionalReader(Protocol):
    """Optional provider capability: revalidate with the upstream's ETag."""

    async def read_if_changed(self, resource_id: str, etag: str, ctx: RequestContext) -> Resource | None: ...


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Served:
    """What one flight produced, shared by every caller that joined it."""

    state: CacheState
    fetched_at: datetime
    resource: Resource | None = None
    result: SearchResult | None = None
    upstream_error: FHIRError | None = None


@dataclass
class ReadThrough:
    """The cache logic, shared by every wrapped provider (one per app)."""

    store: CacheStore
    policy: CachePolicy
    clock: Callable[[], datetime] = _utcnow
    flights: SingleFlight[Served] = field(
        default_factory=lambda: SingleFlight(reuse_for=FLIGHT_REUSE_SECONDS, name="cache")
    )
    # Restricted patients whose purge could not reach the store (MongoDB down). Until every
    # one of them is purged, no cached copy is served: it might hold the address PDS now
    # withholds. Retried before each cache lookup.
    pending_purges: set[str] = field(default_factory=set)

    # ---- reads -------------------------------------------------------------------------

    async def read(self, provider: ResourceProvider, resource_id: str, ctx: RequestContext) -> Resource:
        directives = _directives(ctx)
        rtype = provider.resource_type
        if directives.no_store:
            resource = await provider.read(resource_id, ctx)
            await self._purge_restricted([resource])
            _announce(CacheState.MISS)
            return resource
        key = read_key(rtype, resource_id, ctx.caller_identity(per_user=provider.names_the_user_upstream))
        started = asyncio.get_running_loop().time()
        cached = await self._lookup(key)
        now = self.clock()
        if cached is not None and self.policy.is_fresh(rtype, age_seconds(cached["fetchedAt"], now), directives):
            _announce(CacheState.HIT, cached["fetchedAt"], now)
            fresh: Resource = cached["resource"]
            return fresh
        served = (
            await self.flights.run(key, lambda: self._refresh_read(provider, key, cached, ctx), lookup_started=started)
        ).value
        _announce(served.state, served.fetched_at, self.clock())
        assert served.resource is not None
        return served.resource

    async def _refresh_read(
        self, provider: ResourceProvider, key: CacheKey, cached: Document | None, ctx: RequestContext
    ) -> Served:
        requested_at = self.clock()  # a purge after this instant outranks what comes back
        try:
            resource = await self._fetch_resource(provider, key.key, cached, ctx)
        except PROVIDER_FAILURES as failure:
            err = as_fhir_error(failure)
            stale = self._stale_copy(cached, err)
            if stale is not None:
                return Served(CacheState.STALE, stale["fetchedAt"], resource=stale["resource"], upstream_error=err)
            if cached is not None and err.status in (404, 410):
                await self.store.delete(key)  # gone upstream (e.g. invalidated): gone here
            raise
        fetched_at = self.clock()
        await self._remember_read(key, resource, fetched_at, requested_at)
        return Served(CacheState.REVALIDATED if cached else CacheState.MISS, fetched_at, resource=resource)

    async def _fetch_resource(
        self, provider: ResourceProvider, resource_id: str, cached: Document | None, ctx: RequestContext
    ) -> Resource:
        if cached is not None and cached.get("etag") and isinstance(provider, ConditionalReader):
            changed = await provider.read_if_changed(resource_id, cached["etag"], ctx)
            if changed is None:
                unchanged: Resource = cached["resource"]
                return unchanged
            return changed
        return await provider.read(resource_id, ctx)

    async def _remember_read(
        self, key: CacheKey, resource: Resource, fetched_at: datetime, requested_at: datetime
    ) -> None:
        """Write a fetched resource; a superseded id is re-keyed to the id upstream answered
        with, and a restricted patient first purges every other copy of it."""
        restricted = await self._purge_restricted([resource])
        answered = str(resource.get("id") or key.key)
        if answered != key.key:
            await self.store.delete(key)  # superseded NHS number: the old key must not linger
            key = read_key(key.type, answered, key.scope)
        meta = resource.get("meta") or {}
        await self.store.put(
            {
                **key.as_filter(),
                "resource": resource,
                "versionId": meta.get("versionId"),
                "lastUpdated": meta.get("lastUpdated"),
                "etag": etag(resource),
                "patients": patients_in([resource]),
                "fetchedAt": fetched_at,
                "requestedAt": _requested_at(requested_at, restricted),
                "expiresAt": self.policy.expires_at(key.type, fetched_at),
            }
        )

    # ---- searches ----------------------------------------------------------------------

    async def search(self, provider: ResourceProvider, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        directives = _directives(ctx)
        rtype = provider.resource_type
        if directives.no_store:
            result = await provider.search(request, ctx)
            await self._purge_restricted(result.matches)
            _announce(CacheState.MISS)
            return result
        key = search_key(request, ctx.caller_identity(per_user=provider.names_the_user_upstream))
        started = asyncio.get_running_loop().time()
        cached = await self._lookup(key)
        now = self.clock()
        if cached is not None and self.policy.is_fresh(rtype, age_seconds(cached["fetchedAt"], now), directives):
            _announce(CacheState.HIT, cached["fetchedAt"], now)
            return _result_from(cached["result"])
        served = (
            await self.flights.run(
                key, lambda: self._refresh_search(provider, key, request, cached, ctx), lookup_started=started
            )
        ).value
        _announce(served.state, served.fetched_at, self.clock())
        assert served.result is not None
        if served.state is CacheState.STALE:
            return _with_stale_issue(served.result, served.fetched_at, self.clock(), served.upstream_error)
        return served.result

    async def _refresh_search(
        self,
        provider: ResourceProvider,
        key: CacheKey,
        request: SearchRequest,
        cached: Document | None,
        ctx: RequestContext,
    ) -> Served:
        try:
            requested_at = self.clock()
            result = await provider.search(request, ctx)
        except PROVIDER_FAILURES as failure:
            err = as_fhir_error(failure)
            stale = self._stale_copy(cached, err)
            if stale is not None:
                return Served(
                    CacheState.STALE, stale["fetchedAt"], result=_result_from(stale["result"]), upstream_error=err
                )
            raise
        fetched_at = self.clock()
        restricted = await self._purge_restricted(result.matches)
        await self.store.put(
            {
                **key.as_filter(),
                "result": {
                    "matches": result.matches,
                    "issues": result.issues,
                    "scores": [[rid, score] for rid, score in result.scores.items()],
                },
                "versionId": None,
                "lastUpdated": None,
                "etag": None,
                "patients": patients_in(result.matches),
                "fetchedAt": fetched_at,
                "requestedAt": _requested_at(requested_at, restricted),
                "expiresAt": self.policy.expires_at(key.type, fetched_at),
            }
        )
        return Served(CacheState.REVALIDATED if cached else CacheState.MISS, fetched_at, result=result)

    # ---- shared ------------------------------------------------------------------------

    async def _lookup(self, key: CacheKey) -> Document | None:
        """The cached entry, None when absent or while a restricted-patient purge is pending
        (then nothing cached may be served); timed on the console's trace when one is open."""
        started = time.perf_counter()
        cached = await self.store.get(key) if await self._purges_settled() else None
        if request_trace.current() is not None:
            request_trace.record(
                "cache",
                f"{self.store.backend} lookup: {'entry found' if cached is not None else 'no entry'}",
                {"backend": self.store.backend, "found": cached is not None},
                duration=time.perf_counter() - started,
            )
        return cached

    def _stale_copy(self, cached: Document | None, err: FHIRError) -> Document | None:
        """stale-if-error: only for gateway failures, never for a 4xx the upstream meant."""
        if cached is None or err.status not in GATEWAY_FAILURES:
            return None
        if not self.policy.may_serve_stale(age_seconds(cached["fetchedAt"], self.clock())):
            return None
        log.warning("serving stale cache entry: upstream failed with %s", err.status)
        return cached

    async def _purge_restricted(self, resources: list[Resource]) -> bool:
        """PDS said R or V: every copy cached before (maybe with the address PDS now
        withholds) goes, together with cached searches that contained the patient, and the
        store's tombstone stops copies still in flight coming back (server/cache/store.py).
        True when `resources` name a restricted patient."""
        restricted = restricted_patient_ids(resources)
        for patient_id in restricted:
            purged = await self.store.purge_patient(patient_id)
            if purged is None:
                self.pending_purges.add(patient_id)
                log.warning("restricted-patient purge failed; cached copies are not served until it succeeds")
                continue
            self.pending_purges.discard(patient_id)
            if purged:
                log.info("purged %d cache entries of a restricted patient", purged)
        return bool(restricted)

    async def _purges_settled(self) -> bool:
        """Retry purges that failed earlier; True once none is outstanding."""
        for patient_id in list(self.pending_purges):
            if await self.store.purge_patient(patient_id) is None:
                return False
            self.pending_purges.discard(patient_id)
        return True


def _requested_at(requested_at: datetime, restricted: bool) -> datetime | None:
    """The entry's requestedAt: None when it holds a restricted patient, because it already
    shows the restriction its own purge (just before its write) tombstoned."""
    return None if restricted else requested_at


def _directives(ctx: RequestContext) -> Directives:
    return parse_cache_control(ctx.headers.get("cache-control"), ctx.headers.get("pragma"))


def _announce(state: CacheState, fetched_at: datetime | None = None, now: datetime | None = None) -> None:
    metrics.cache_result(state.value)  # every lookup, _include reads too; X-Cache only for the primary
    headers = {"X-Cache": state.value}
    if state in (CacheState.HIT, CacheState.STALE) and fetched_at is not None and now is not None:
        headers["Age"] = str(int(age_seconds(fetched_at, now)))
    if state is CacheState.STALE:
        headers["Warning"] = STALE_WARNING
    add_response_headers(headers)


def _result_from(stored: dict[str, Any]) -> SearchResult:
    return SearchResult(
        matches=list(stored.get("matches") or []),
        issues=list(stored.get("issues") or []),
        scores={str(rid): float(score) for rid, score in stored.get("scores") or []},
    )


def _with_stale_issue(result: SearchResult, fetched_at: datetime, now: datetime, err: FHIRError | None) -> SearchResult:
    reason = f" ({err.status})" if err is not None else ""
    note = issue(
        "transient",
        f"The NHS service did not answer{reason}; these results are a cached copy fetched "
        f"{int(age_seconds(fetched_at, now))} seconds ago ({fetched_at.isoformat()}) and may be out of date",
        severity="warning",
    )
    return SearchResult(matches=result.matches, issues=[*result.issues, note], scores=result.scores)
