"""ReadThrough and CachingProvider with a scripted provider and the in-memory store:
HIT/MISS/REVALIDATED/STALE, Cache-Control, stale-if-error, restricted purge, superseded
re-keying, per-user scope and single-flight. (End-to-end over MongoDB and real sockets:
tests/integration/test_cache_facade.py.)"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest

from server.cache.memory import MemoryStore
from server.cache.policy import CachePolicy, read_key, search_key
from server.cache.provider import CachingProvider, with_cache
from server.cache.read_through import ReadThrough
from server.cache.store import Document
from server.fhir.errors import BadRequest, FHIRError, NotFound, ServiceUnavailable
from server.fhir.response_notes import collecting_response_headers
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchRequest, parse_search
from server.nhs.error_codes import CodeMeaning
from server.nhs.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult

CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def patient(nhs: str, version: str = "1", security: str = "U", **fields: Any) -> Resource:
    return {
        "resourceType": "Patient",
        "id": nhs,
        "meta": {"versionId": version, "security": [{"system": CONF, "code": security}]},
        **fields,
    }


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class ScriptedPatients(ResourceProvider):
    """Answers from a dict (an upstream stand-in); counts calls; can be told to fail."""

    resource_type: ClassVar[str] = "Patient"
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (SearchParamSpec("family", "string", "", path="name"),)
    documentation: ClassVar[str] = "scripted"

    def __init__(self) -> None:
        self.records: dict[str, Resource] = {"9000000009": patient("9000000009", address=[{"city": "Leeds"}])}
        self.superseded: dict[str, str] = {}
        self.reads = 0
        self.searches = 0
        self.fail: FHIRError | UpstreamError | None = None
        self.delay = 0.0

    def helper(self) -> str:
        return "inner helper"

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        self.reads += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise self.fail
        record = self.records.get(self.superseded.get(resource_id, resource_id))
        if record is None:
            raise NotFound("no such patient")
        return copy.deepcopy(record)

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        self.searches += 1
        if self.fail:
            raise self.fail
        return SearchResult(
            matches=[copy.deepcopy(r) for r in self.records.values()], scores={rid: 1.0 for rid in self.records}
        )


class CountingStore(MemoryStore):
    def __init__(self, clock: Clock) -> None:
        super().__init__(max_entries=100, clock=clock)
        self.puts = 0

    async def put(self, doc: Document) -> None:
        self.puts += 1
        await super().put(doc)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def upstream() -> ScriptedPatients:
    return ScriptedPatients()


@pytest.fixture
def store(clock: Clock) -> CountingStore:
    return CountingStore(clock)


@pytest.fixture
def cached(upstream: ScriptedPatients, store: CountingStore, clock: Clock) -> CachingProvider:
    policy = CachePolicy(default_ttl=60, ttl_by_type={"Patient": 100}, stale_if_error=1000)
    return CachingProvider(upstream, ReadThrough(store, policy, clock=clock))


def ctx(**headers: str) -> RequestContext:
    token = headers.pop("token", None)
    return RequestContext(
        request_id="r1",
        base_url="http://facade",
        user_token=token,
        headers={k.replace("_", "-").lower(): v for k, v in headers.items()},
    )


async def read(provider: ResourceProvider, nhs: str = "9000000009", **headers: str) -> tuple[Resource, dict[str, str]]:
    with collecting_response_headers() as extra:
        resource = await provider.read(nhs, ctx(**headers))
    return resource, extra


def family_search(provider: ResourceProvider) -> SearchRequest:
    return parse_search([("family", "Smith")], provider.declaration(20, 100))


async def search(provider: ResourceProvider, **headers: str) -> tuple[SearchResult, dict[str, str]]:
    with collecting_response_headers() as extra:
        result = await provider.search(family_search(provider), ctx(**headers))
    return result, extra


async def test_miss_then_hit(cached: CachingProvider, upstream: ScriptedPatients, clock: Clock) -> None:
    first, h1 = await read(cached)
    clock.advance(30)
    second, h2 = await read(cached)
    assert h1 == {"X-Cache": "MISS"}
    assert h2 == {"X-Cache": "HIT", "Age": "30"}
    assert first == second and upstream.reads == 1


async def test_stale_entry_is_refetched_and_replaced(
    cached: CachingProvider, upstream: ScriptedPatients, clock: Clock
) -> None:
    await read(cached)
    upstream.records["9000000009"]["meta"]["versionId"] = "2"
    clock.advance(100)  # Patient freshness is 100 s here
    resource, headers = await read(cached)
    assert headers == {"X-Cache": "REVALIDATED"} and resource["meta"]["versionId"] == "2"
    _, again = await read(cached)
    assert again["X-Cache"] == "HIT" and upstream.reads == 2


async def test_no_cache_forces_revalidation_and_max_age_narrows(
    cached: CachingProvider, upstream: ScriptedPatients, clock: Clock
) -> None:
    await read(cached)
    _, headers = await read(cached, cache_control="no-cache")
    assert headers["X-Cache"] == "REVALIDATED" and upstream.reads == 2
    clock.advance(20)
    _, headers = await read(cached, cache_control="max-age=10")
    assert headers["X-Cache"] == "REVALIDATED" and upstream.reads == 3
    _, headers = await read(cached, pragma="no-cache")
    assert headers["X-Cache"] == "REVALIDATED" and upstream.reads == 4


async def test_no_store_bypasses_the_cache(
    cached: CachingProvider, upstream: ScriptedPatients, store: CountingStore
) -> None:
    _, h1 = await read(cached, cache_control="no-store")
    _, h2 = await read(cached, cache_control="no-store")
    assert h1 == h2 == {"X-Cache": "MISS"}
    assert upstream.reads == 2 and store.puts == 0 and len(store) == 0
    await read(cached)
    _, h3 = await read(cached, cache_control="no-store")
    assert h3["X-Cache"] == "MISS" and upstream.reads == 4  # even with an entry present


async def test_stale_if_error_serves_old_copy_with_warning(
    cached: CachingProvider, upstream: ScriptedPatients, clock: Clock
) -> None:
    original, _ = await read(cached)
    clock.advance(500)
    upstream.fail = ServiceUnavailable("PDS is unavailable")
    resource, headers = await read(cached)
    assert resource == original
    assert headers["X-Cache"] == "STALE" and headers["Age"] == "500"
    assert "110" in headers["Warning"] and "Response is Stale" in headers["Warning"]
    clock.advance(600)  # now 1100 s old: past the 1000 s stale-if-error maximum
    with pytest.raises(ServiceUnavailable):
        await read(cached)


async def test_client_errors_never_serve_stale_and_not_found_purges(
    cached: CachingProvider, upstream: ScriptedPatients, clock: Clock, store: CountingStore
) -> None:
    await read(cached)
    clock.advance(200)
    upstream.fail = BadRequest("rejected")
    with pytest.raises(BadRequest):
        await read(cached)
    assert await store.get(read_key("Patient", "9000000009")) is not None
    upstream.fail = NotFound("invalidated")
    with pytest.raises(NotFound):
        await read(cached)
    assert await store.get(read_key("Patient", "9000000009")) is None


async def test_an_upstream_outage_serves_stale_like_the_gateway_error_it_maps_to(
    cached: CachingProvider, upstream: ScriptedPatients, clock: Clock
) -> None:
    """Providers let UpstreamError escape (the registered handler renders it): the cache judges
    it by its mapped status, so an outage still serves the stale copy, reads and searches alike."""
    original, _ = await read(cached)
    first, _ = await search(cached)
    clock.advance(500)
    upstream.fail = UpstreamTimeout("PDS", "timed out")
    resource, headers = await read(cached)
    assert resource == original and headers["X-Cache"] == "STALE"
    upstream.fail = UpstreamUnavailable("PDS", "HTTP 503", status=503)
    stale, headers = await search(cached)
    assert headers["X-Cache"] == "STALE" and stale.matches == first.matches
    assert "(503)" in stale.issues[-1]["diagnostics"]
    clock.advance(600)  # past the stale-if-error maximum: the upstream error itself, for its handler
    with pytest.raises(UpstreamUnavailable):
        await read(cached)


async def test_an_upstream_refusal_never_serves_stale_and_an_upstream_not_found_purges(
    cached: CachingProvider, upstream: ScriptedPatients, clock: Clock, store: CountingStore
) -> None:
    await read(cached)
    clock.advance(200)
    upstream.fail = UpstreamRejected("PDS", "HTTP 400", status=400)
    with pytest.raises(UpstreamRejected):
        await read(cached)
    assert await store.get(read_key("Patient", "9000000009")) is not None
    upstream.fail = UpstreamRejected(
        "PDS", "HTTP 404", status=404, nhs_code="INVALIDATED_RESOURCE", meaning=CodeMeaning.GONE
    )  # 410
    with pytest.raises(UpstreamRejected):
        await read(cached)
    assert await store.get(read_key("Patient", "9000000009")) is None


async def test_errors_are_not_cached(cached: CachingProvider, upstream: ScriptedPatients) -> None:
    for _ in range(2):
        with pytest.raises(NotFound):
            await read(cached, "9111231130")
    assert upstream.reads == 2


async def test_search_hit_and_stale_warning_issue(
    cached: CachingProvider, upstream: ScriptedPatients, clock: Clock
) -> None:
    first, h1 = await search(cached)
    second, h2 = await search(cached)
    assert (h1["X-Cache"], h2["X-Cache"]) == ("MISS", "HIT") and upstream.searches == 1
    assert second.matches == first.matches and second.scores == {"9000000009": 1.0}
    clock.advance(150)
    upstream.fail = ServiceUnavailable("down")
    stale, h3 = await search(cached)
    assert h3["X-Cache"] == "STALE" and "Warning" in h3
    assert stale.matches == first.matches
    assert stale.issues[-1]["severity"] == "warning" and stale.issues[-1]["code"] == "transient"
    assert "150 seconds ago" in stale.issues[-1]["diagnostics"]


async def test_restricted_patient_purges_every_copy(
    cached: CachingProvider, upstream: ScriptedPatients, store: CountingStore, clock: Clock
) -> None:
    await read(cached)
    result, _ = await search(cached)
    assert result.matches[0]["address"]
    # PDS now says R and withholds the address.
    upstream.records["9000000009"] = patient("9000000009", version="3", security="R")
    resource, headers = await read(cached, cache_control="no-cache")
    assert "address" not in resource and headers["X-Cache"] == "REVALIDATED"
    assert await store.get(search_key(family_search(cached))) is None  # search that held it: purged
    entry = await store.get(read_key("Patient", "9000000009"))
    assert entry is not None and "address" not in entry["resource"]  # replaced, never merged
    clock.advance(1)
    _, headers = await read(cached)
    assert headers["X-Cache"] == "HIT"


async def test_restricted_patient_seen_in_search_purges_its_read(
    cached: CachingProvider, upstream: ScriptedPatients, store: CountingStore
) -> None:
    await read(cached)
    upstream.records["9000000009"] = patient("9000000009", version="3", security="V")
    await search(cached, cache_control="no-store")  # even a no-store answer purges
    assert await store.get(read_key("Patient", "9000000009")) is None


class FlakyPurgeStore(CountingStore):
    """A store whose purges fail (returns None, as MongoStore does when MongoDB is down)
    while `purge_down` is set; gets and puts still work, as after a brief outage."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.purge_down = False

    async def purge_patient(self, patient_id: str) -> int | None:
        if self.purge_down:
            return None
        return await super().purge_patient(patient_id)


async def test_a_failed_restricted_purge_stops_cached_copies_until_it_succeeds(
    upstream: ScriptedPatients, clock: Clock
) -> None:
    store = FlakyPurgeStore(clock)
    policy = CachePolicy(default_ttl=60, ttl_by_type={"Patient": 100}, stale_if_error=1000)
    cached = CachingProvider(upstream, ReadThrough(store, policy, clock=clock))
    await search(cached)  # a search entry holding the unrestricted record (with its address)
    # PDS now says R, but the purge cannot reach the store.
    upstream.records["9000000009"] = patient("9000000009", version="3", security="R")
    store.purge_down = True
    await read(cached, cache_control="no-store")
    assert await store.get(search_key(family_search(cached))) is not None  # the old copy is still there...
    reads_before = upstream.searches
    result, headers = await search(cached)
    assert headers["X-Cache"] != "HIT" and upstream.searches == reads_before + 1  # ...but is not served
    assert all("address" not in m for m in result.matches)
    # Once the store answers again, the pending purge runs first (taking every copy of the
    # patient, old and new), and caching resumes with the restricted record.
    store.purge_down = False
    _, headers = await search(cached)
    assert headers["X-Cache"] == "MISS"
    clock.advance(1)
    cached_result, headers = await search(cached)
    assert headers["X-Cache"] == "HIT"
    assert all("address" not in m for m in cached_result.matches)


async def test_superseded_number_rekeys(
    cached: CachingProvider, upstream: ScriptedPatients, store: CountingStore
) -> None:
    upstream.records["9000000068"] = patient("9000000068")
    upstream.superseded["9000000041"] = "9000000068"
    resource, _ = await read(cached, "9000000041")
    assert resource["id"] == "9000000068"
    assert await store.get(read_key("Patient", "9000000041")) is None
    assert await store.get(read_key("Patient", "9000000068")) is not None
    _, headers = await read(cached, "9000000068")
    assert headers["X-Cache"] == "HIT" and upstream.reads == 1


async def test_entries_fetched_with_a_user_token_are_that_users(
    cached: CachingProvider, upstream: ScriptedPatients
) -> None:
    await read(cached, token="alice")
    _, same = await read(cached, token="alice")
    _, other = await read(cached, token="bob")
    _, app = await read(cached)
    assert (same["X-Cache"], other["X-Cache"], app["X-Cache"]) == ("HIT", "MISS", "MISS")
    assert upstream.reads == 3


async def test_concurrent_misses_are_one_upstream_call_and_one_write(
    cached: CachingProvider, upstream: ScriptedPatients, store: CountingStore
) -> None:
    upstream.delay = 0.05
    results = await asyncio.gather(*(read(cached) for _ in range(200)))
    assert upstream.reads == 1 and store.puts == 1
    assert {r[1]["X-Cache"] for r in results} == {"MISS"}
    assert all(r[0]["id"] == "9000000009" for r in results)


async def test_concurrent_failures_are_shared_too(cached: CachingProvider, upstream: ScriptedPatients) -> None:
    upstream.delay = 0.05
    upstream.fail = ServiceUnavailable("down")
    results = await asyncio.gather(*(read(cached) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, ServiceUnavailable) for r in results) and upstream.reads == 1


async def test_a_departing_caller_does_not_cancel_the_flight(
    cached: CachingProvider, upstream: ScriptedPatients
) -> None:
    upstream.delay = 0.05
    leader = asyncio.ensure_future(read(cached))
    await asyncio.sleep(0.01)
    follower = asyncio.ensure_future(read(cached))
    await asyncio.sleep(0)
    leader.cancel()
    resource, headers = await follower
    assert resource["id"] == "9000000009" and upstream.reads == 1


class ConditionalPatients(ScriptedPatients):
    """An upstream that supports If-None-Match (read_if_changed)."""

    def __init__(self) -> None:
        super().__init__()
        self.conditional: list[str] = []

    async def read_if_changed(self, resource_id: str, etag: str, ctx: RequestContext) -> Resource | None:
        self.conditional.append(etag)
        current = self.records[resource_id]
        return None if etag == f'W/"{current["meta"]["versionId"]}"' else copy.deepcopy(current)


async def test_revalidation_uses_the_upstream_etag_when_supported(store: CountingStore, clock: Clock) -> None:
    upstream = ConditionalPatients()
    provider = CachingProvider(
        upstream, ReadThrough(store, CachePolicy(default_ttl=10, stale_if_error=100), clock=clock)
    )
    await read(provider)
    clock.advance(11)
    _, headers = await read(provider)
    assert headers["X-Cache"] == "REVALIDATED" and upstream.conditional == ['W/"1"'] and upstream.reads == 1
    clock.advance(5)
    _, headers = await read(provider)
    assert headers == {"X-Cache": "HIT", "Age": "5"}  # "not modified" restarted freshness
    upstream.records["9000000009"]["meta"]["versionId"] = "2"
    clock.advance(11)
    resource, _ = await read(provider)
    assert resource["meta"]["versionId"] == "2"


def test_wrapper_shows_the_inner_provider(cached: CachingProvider, upstream: ScriptedPatients) -> None:
    assert cached.resource_type == "Patient"
    assert cached.documentation == "scripted"
    assert cached.search_param("family") is upstream.search_param("family")
    assert cached.declaration(20, 100) == upstream.declaration(20, 100)
    assert cached.helper() == "inner helper"


def test_opt_out_and_no_cache(upstream: ScriptedPatients, store: CountingStore) -> None:
    cache = ReadThrough(store, CachePolicy(default_ttl=1))
    assert with_cache(upstream, None) is upstream
    assert isinstance(with_cache(upstream, cache), CachingProvider)
    upstream.cacheable = False  # type: ignore[attr-defined]
    assert with_cache(upstream, cache) is upstream


async def test_a_copy_in_flight_when_its_patient_is_purged_is_not_put_back(store: CountingStore, clock: Clock) -> None:
    """Request A asks PDS for the patient; before its answer arrives, a search finds the
    patient restricted and purges. A's older, unrestricted copy must not enter the cache."""
    asked, release = asyncio.Event(), asyncio.Event()

    class InFlight(ScriptedPatients):
        async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
            self.reads += 1
            before_restriction = copy.deepcopy(self.records[resource_id])
            asked.set()
            await release.wait()
            return before_restriction

    slow = InFlight()
    policy = CachePolicy(default_ttl=60, ttl_by_type={"Patient": 100}, stale_if_error=1000)
    cached = CachingProvider(slow, ReadThrough(store, policy, clock=clock))
    in_flight = asyncio.create_task(read(cached))
    await asked.wait()
    clock.advance(1)
    slow.records["9000000009"] = patient("9000000009", version="3", security="R")
    await search(cached)  # PDS says R: every copy goes
    release.set()
    old, headers = await in_flight
    assert old["address"] and headers["X-Cache"] == "MISS"  # the bound: what was already in flight
    assert await store.get(read_key("Patient", "9000000009")) is None
    _, again = await read(cached)
    assert again["X-Cache"] == "MISS" and slow.reads == 2  # fetched afresh, restricted now
