"""The cache end to end: the façade on a loopback port, the emulator as PDS, and the
MongoDB store over the real driver and socket (SecantusDB, or FACADE_TEST_MONGODB_URI)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from server.cache.mongo import COLLECTION
from server.sources.pds import emulator_data as pds_data
from tests.support.emulator_control import inject
from tests.support.fhir_validation import validate_r4
from tests.support.mongo import MongoTarget, SecantusProcess
from tests.support.servers import Emulator, FHIRClient, running_facade

pytestmark = pytest.mark.mongo

PDS_PATIENT = "/personal-demographics/FHIR/R4/Patient"
SMITH_SEARCH = "/Patient?family=Smith&birthdate=2010-10-22"


@contextlib.asynccontextmanager
async def cached_facade(
    emulator: Emulator, http: aiohttp.ClientSession, uri: str, database: str, **overrides: Any
) -> AsyncIterator[FHIRClient]:
    async with running_facade(
        emulator, cache_enabled=True, mongodb_uri=uri, mongodb_database=database, **overrides
    ) as url:
        yield FHIRClient(url, http)


@contextlib.asynccontextmanager
async def cache_collection(target: MongoTarget) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(target.uri, tz_aware=True)
    try:
        yield client[target.database][COLLECTION]
    finally:
        await client.close()


def upstream_calls(emulator: Emulator, path_and_query: str) -> int:
    return emulator.state.counts[f"GET {path_and_query}"]


async def test_miss_hit_revalidate_no_store(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with cached_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade:
        seen = []
        for headers in ({}, {}, {"Cache-Control": "no-cache"}, {"Cache-Control": "no-store"}, {}):
            status, h, body = await facade.get("/Patient/9000000009", headers=headers)
            assert status == 200 and body["id"] == "9000000009"
            assert h["ETag"] == 'W/"2"' and h["Last-Modified"] == "Sun, 01 Mar 2026 09:30:00 GMT"
            seen.append(h["X-Cache"])
        assert seen == ["MISS", "HIT", "REVALIDATED", "MISS", "HIT"]
        assert upstream_calls(emulator, f"{PDS_PATIENT}/9000000009") == 3
        validate_r4(body)
        status, h, _ = await facade.get("/Patient/9000000009", headers={"If-None-Match": 'W/"2"'})
        assert status == 304 and h["X-Cache"] == "HIT" and h["ETag"] == 'W/"2"'
        async with cache_collection(mongo_db) as coll:
            stored = await coll.find_one({"kind": "read", "key": "9000000009"})
        assert stored["resource"]["id"] == "9000000009" and stored["versionId"] == "2"
        assert stored["etag"] == 'W/"2"' and stored["expiresAt"] > stored["fetchedAt"]


async def test_search_is_cached_under_its_canonical_query(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with cached_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade:
        s1, h1, b1 = await facade.get("/Patient?family=Smith&birthdate=2010-10")
        s2, h2, b2 = await facade.get("/Patient?birthdate=2010-10&family=Smith&_count=1")
        s3, h3, b3 = await facade.get("/Patient?family=Smith&birthdate=eq2010-10&_summary=true")
    assert (s1, s2, s3) == (200, 200, 200)
    assert (h1["X-Cache"], h2["X-Cache"], h3["X-Cache"]) == ("MISS", "HIT", "HIT")
    assert b1["total"] == b2["total"] == b3["total"] >= 2 and len(b2["entry"]) == 1
    assert sum(v for k, v in emulator.state.counts.items() if k.startswith(f"GET {PDS_PATIENT}?")) == 1
    validate_r4(b2)


async def test_ttl_expiry_read_side_and_server_side(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with (
        cached_facade(
            emulator, http, mongo_db.uri, mongo_db.database, cache_ttl_by_type={"Patient": 0.5}, cache_stale_if_error=0
        ) as facade,
        cache_collection(mongo_db) as coll,
    ):
        _, h1, _ = await facade.get("/Patient/9000000009")
        await asyncio.sleep(0.7)
        _, h2, _ = await facade.get("/Patient/9000000009")  # expired: the read checks expiresAt itself
        assert (h1["X-Cache"], h2["X-Cache"]) == ("MISS", "MISS")
        assert upstream_calls(emulator, f"{PDS_PATIENT}/9000000009") == 2
        if not mongo_db.fast_ttl_sweep:
            return  # a real mongod sweeps every 60 s; the read-side check above is what matters
        for _ in range(50):
            if await coll.count_documents({"key": "9000000009"}) == 0:
                break
            await asyncio.sleep(0.1)
        assert await coll.count_documents({"key": "9000000009"}) == 0


async def test_stale_if_error_read_and_search(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with cached_facade(
        emulator, http, mongo_db.uri, mongo_db.database, cache_ttl_by_type={"Patient": 0.3}, cache_stale_if_error=60
    ) as facade:
        await facade.get("/Patient/9000000009")
        await facade.get(SMITH_SEARCH)
        await asyncio.sleep(0.4)
        await inject(http, emulator, path_prefix=PDS_PATIENT, status=503, times=20)
        status, h, body = await facade.get("/Patient/9000000009")
        assert status == 200 and h["X-Cache"] == "STALE" and "Response is Stale" in h["Warning"]
        assert int(h["Age"]) >= 0 and body["id"] == "9000000009"
        validate_r4(body)
        status, h, bundle = await facade.get(SMITH_SEARCH)
        assert status == 200 and h["X-Cache"] == "STALE"
        warnings = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "OperationOutcome"]
        assert warnings and warnings[0]["issue"][-1]["code"] == "transient"
        assert "cached copy" in warnings[0]["issue"][-1]["diagnostics"]
        validate_r4(bundle)
        # A patient never cached has nothing to fall back on: the upstream error stands.
        status, _, outcome = await facade.get("/Patient/9000000017")
        assert status == 503 and outcome["resourceType"] == "OperationOutcome"  # PDS 503 -> 503


async def test_restricted_patient_purges_cached_copies(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        cached_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade,
        cache_collection(mongo_db) as coll,
    ):
        _, _, before = await facade.get("/Patient/9000000009")
        _, _, bundle = await facade.get(SMITH_SEARCH)
        assert before["address"] and await coll.count_documents({"patients": "9000000009"}) == 2
        # PDS now flags the patient restricted and withholds location data.
        restricted = copy.deepcopy(pds_data.PATIENTS["9000000009"])
        restricted["meta"] = {
            **restricted["meta"],
            "versionId": "3",
            "security": [{"system": pds_data.CONF, "code": "R", "display": "restricted"}],
        }
        for field in ("address", "telecom", "generalPractitioner", "extension"):
            restricted.pop(field)
        monkeypatch.setitem(pds_data.PATIENTS, "9000000009", restricted)

        status, h, after = await facade.get("/Patient/9000000009", headers={"Cache-Control": "no-cache"})
        assert status == 200 and h["X-Cache"] == "REVALIDATED" and h["ETag"] == 'W/"3"'
        assert "address" not in after and "telecom" not in after and "generalPractitioner" not in after
        docs = [d async for d in coll.find({"patients": "9000000009"})]
        assert [d["kind"] for d in docs] == ["read"]  # the cached search that held it is gone
        assert "address" not in docs[0]["resource"]
        _, h, bundle = await facade.get(SMITH_SEARCH)
        assert h["X-Cache"] == "MISS"
        jane = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "9000000009")
        assert "address" not in jane and "telecom" not in jane


async def test_superseded_number_rekeys_the_cache(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with (
        cached_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade,
        cache_collection(mongo_db) as coll,
    ):
        status, h, body = await facade.get("/Patient/9000000041")
        assert status == 200 and body["id"] == "9000000068" and h["Content-Location"].endswith("/Patient/9000000068")
        assert await coll.count_documents({"kind": "read", "key": "9000000041"}) == 0
        assert await coll.count_documents({"kind": "read", "key": "9000000068"}) == 1
        _, h, _ = await facade.get("/Patient/9000000068")
        assert h["X-Cache"] == "HIT"


async def test_200_concurrent_identical_misses_make_one_upstream_call(
    emulator: Emulator, mongo_db: MongoTarget
) -> None:
    connector = aiohttp.TCPConnector(limit=200)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        cached_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade,
        cache_collection(mongo_db) as coll,
    ):
        results = await asyncio.gather(*(facade.get("/Patient/9000000009") for _ in range(200)))
        assert {status for status, _, _ in results} == {200}
        assert upstream_calls(emulator, f"{PDS_PATIENT}/9000000009") == 1
        assert {h["X-Cache"] for _, h, _ in results} <= {"MISS", "HIT"}
        assert await coll.count_documents({"key": "9000000009"}) == 1


async def test_health_reports_cache_and_upstream(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with cached_facade(emulator, http, mongo_db.uri, mongo_db.database) as facade:
        status, h, body = await facade.get("/_health")
    assert status == 200 and h["Content-Type"].startswith("application/json")
    assert body == {
        "status": "ok",
        "cache": {
            "backend": "mongodb",
            "status": "up",
            "indexes": "ready",
            "nearCache": {"seconds": 1.0, "entries": 0},  # server/cache/near.py
        },
        "audit": {"backend": "mongodb", "status": "ok"},
        "upstream": {"mode": "live", "apis": {api: "configured" for api in ("pds", "bars", "ers", "cpt", "gpconnect")}},
    }
    async with running_facade(emulator, cache_enabled=True) as url:
        _, _, memory = await FHIRClient(url, http).get("/_health")
    assert memory["cache"]["backend"] == "memory" and memory["status"] == "ok"
    assert memory["audit"] == {"backend": "memory", "status": "ok"}
    async with running_facade(emulator) as url:
        _, h, disabled = await FHIRClient(url, http).get("/_health")
        _, read_headers, _ = await FHIRClient(url, http).get("/Patient/9000000009")
    assert disabled["cache"] == {"backend": "none", "status": "disabled"}
    assert "X-Cache" not in read_headers


async def wait_for_cache_status(facade: FHIRClient, wanted: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _, _, body = await facade.get("/_health")
        if body["cache"]["status"] == wanted:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"cache never became {wanted}: {body}"
        await asyncio.sleep(0.2)


async def test_mongodb_killed_mid_run_then_restarted(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A dedicated SecantusDB: killed (SIGKILL) while the façade runs, the façade keeps
    answering from upstream and says so in /_health; restarted on the same port, the
    driver reconnects by itself and the cache is used again."""
    server = SecantusProcess()
    await asyncio.to_thread(server.start)
    try:
        near = 0.2  # FACADE_CACHE_NEAR_SECONDS: the worker's own copies outlive MongoDB this long
        async with cached_facade(emulator, http, server.uri, "facade_kill_test", cache_near_seconds=near) as facade:
            assert [(await facade.get("/Patient/9000000009"))[1]["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]
            server.kill()
            await asyncio.sleep(near + 0.3)  # the near copy lapses
            for _ in range(3):
                status, h, body = await facade.get("/Patient/9000000009")
                assert status == 200 and body["id"] == "9000000009" and h["X-Cache"] == "MISS"
            health = await wait_for_cache_status(facade, "down")
            assert health["status"] == "degraded" and health["cache"]["lastError"]
            await asyncio.to_thread(server.start)  # same port: the URI the façade holds
            await wait_for_cache_status(facade, "up")
            seen = [(await facade.get("/Patient/9000000009"))[1]["X-Cache"] for _ in range(2)]
            assert seen == ["MISS", "HIT"]  # the new server started empty; the cache works again
    finally:
        server.stop()
