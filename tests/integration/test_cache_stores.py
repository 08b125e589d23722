"""The cache-store contract, run against both implementations over their real I/O:
the in-memory store, and the MongoDB store through AsyncMongoClient over a socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from server.cache.memory import MemoryStore
from server.cache.mongo import COLLECTION, MongoStore, create_client
from server.cache.store import CacheKey, CacheStore
from tests.support.mongo import MongoTarget

pytestmark = pytest.mark.mongo


def now() -> datetime:
    return datetime.now(timezone.utc)


def doc(key: CacheKey, *, ttl: float = 60.0, patients: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    fetched = now()
    body = {"resourceType": "Patient", "id": key.key, "meta": {"versionId": "2"}, "name": [{"family": "Smith"}]}
    out: dict[str, Any] = {
        **key.as_filter(),
        "fetchedAt": fetched,
        "expiresAt": fetched + timedelta(seconds=ttl),
        "versionId": "2",
        "lastUpdated": None,
        "etag": 'W/"2"',
        "patients": list(patients),
    }
    if key.kind == "read":
        out["resource"] = body
    else:
        out["result"] = {"matches": [body], "issues": [], "scores": [[key.key, 1.0]]}
    out.update(extra)
    return out


@pytest.fixture(params=["memory", "mongodb"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheStore]:
    if request.param == "memory":
        yield MemoryStore(max_entries=100)
        return
    target: MongoTarget = request.getfixturevalue("mongo_db")
    client = create_client(target.uri, 2000)
    try:
        mongo = MongoStore(client[target.database][COLLECTION])
        await mongo.start()
        assert mongo.status == "up"
        yield mongo
    finally:
        await client.close()


READ = CacheKey("read", "Patient", "9000000009")
SEARCH = CacheKey("search", "Patient", "birthdate=eq2010-10-22&family=Smith")


async def test_round_trip_keeps_every_field(store: CacheStore) -> None:
    written = doc(READ, patients=("9000000009",))
    await store.put(written)
    got = await store.get(READ)
    assert got is not None
    assert got["resource"] == written["resource"]
    assert got["patients"] == ["9000000009"]
    assert got["etag"] == 'W/"2"' and got["versionId"] == "2"
    # MongoDB keeps milliseconds; both stores give timezone-aware UTC back.
    assert abs((got["fetchedAt"] - written["fetchedAt"]).total_seconds()) < 0.002
    assert got["expiresAt"].tzinfo is not None


async def test_absent_key_is_none(store: CacheStore) -> None:
    assert await store.get(READ) is None


async def test_put_replaces_same_key(store: CacheStore) -> None:
    await store.put(doc(READ))
    newer = doc(READ)
    newer["resource"]["meta"]["versionId"] = "3"
    await store.put(newer)
    got = await store.get(READ)
    assert got is not None and got["resource"]["meta"]["versionId"] == "3"


async def test_scope_and_kind_separate_entries(store: CacheStore) -> None:
    await store.put(doc(READ))
    other_user = CacheKey("read", "Patient", READ.key, scope="abc")
    assert await store.get(other_user) is None
    assert await store.get(CacheKey("search", "Patient", READ.key)) is None


async def test_read_side_expiry(store: CacheStore) -> None:
    """Expired entries are never returned, whether or not the server has swept them."""
    await store.put(doc(READ, ttl=-1))
    assert await store.get(READ) is None
    await store.put(doc(READ, ttl=0.3))
    assert await store.get(READ) is not None
    await asyncio.sleep(0.4)
    assert await store.get(READ) is None


async def test_search_documents(store: CacheStore) -> None:
    await store.put(doc(SEARCH, patients=("9000000009",)))
    got = await store.get(SEARCH)
    assert got is not None
    assert got["result"]["matches"][0]["id"] == SEARCH.key
    assert got["result"]["scores"] == [[SEARCH.key, 1.0]]


async def test_delete(store: CacheStore) -> None:
    await store.put(doc(READ))
    await store.delete(READ)
    assert await store.get(READ) is None
    await store.delete(READ)  # deleting what is gone is fine


async def test_purge_by_patient_removes_reads_and_searches_containing_it(store: CacheStore) -> None:
    other = CacheKey("read", "Patient", "9000000017")
    await store.put(doc(READ, patients=("9000000009",)))
    await store.put(doc(SEARCH, patients=("9000000009", "9000000017")))
    await store.put(doc(other, patients=("9000000017",)))
    assert await store.purge_patient("9000000009") == 2
    assert await store.get(READ) is None
    assert await store.get(SEARCH) is None
    assert await store.get(other) is not None


async def test_returned_documents_are_copies(store: CacheStore) -> None:
    await store.put(doc(READ))
    first = await store.get(READ)
    assert first is not None
    first["resource"]["name"][0]["family"] = "Changed"
    again = await store.get(READ)
    assert again is not None and again["resource"]["name"][0]["family"] == "Smith"


async def test_health_reports_backend(store: CacheStore) -> None:
    health = await store.health()
    assert health["backend"] == store.backend
    assert health["status"] == "up"


async def test_memory_store_is_bounded_lru() -> None:
    store = MemoryStore(max_entries=2)
    keys = [CacheKey("read", "Patient", str(n)) for n in range(3)]
    await store.put(doc(keys[0]))
    await store.put(doc(keys[1]))
    assert await store.get(keys[0]) is not None  # 0 is now the most recently used
    await store.put(doc(keys[2]))
    assert len(store) == 2
    assert await store.get(keys[1]) is None
    assert await store.get(keys[0]) is not None and await store.get(keys[2]) is not None


async def test_mongo_indexes_created_at_start(mongo_db: MongoTarget) -> None:
    client: AsyncMongoClient = create_client(mongo_db.uri, 2000)
    try:
        await MongoStore(client[mongo_db.database][COLLECTION]).start()
        info = await client[mongo_db.database][COLLECTION].index_information()
    finally:
        await client.close()
    assert info["cache_key"]["unique"] is True
    assert [f for f, _ in info["cache_key"]["key"]] == ["kind", "type", "key", "scope"]
    assert info["expires_ttl"]["expireAfterSeconds"] == 0
    assert [f for f, _ in info["patients"]["key"]] == ["patients"]


async def test_mongo_ttl_monitor_deletes_expired_documents(mongo_db: MongoTarget) -> None:
    """Server-side deletion, where the server sweeps fast enough (our SecantusDB sweeps
    every second; a real mongod every 60 s, so this one test skips there)."""
    if not mongo_db.fast_ttl_sweep:
        pytest.skip("this MongoDB's TTL monitor sweeps every 60 s; read-side expiry is tested above")
    client: AsyncMongoClient = create_client(mongo_db.uri, 2000)
    try:
        coll = client[mongo_db.database][COLLECTION]
        store = MongoStore(coll)
        await store.start()
        await store.put(doc(READ, ttl=0.2))
        for _ in range(60):
            if await coll.count_documents({}) == 0:
                break
            await asyncio.sleep(0.1)
        assert await coll.count_documents({}) == 0, "the TTL index never deleted the expired document"
    finally:
        await client.close()


async def test_mongo_store_with_no_server_is_a_quiet_miss() -> None:
    """A dead MongoDB: get is None, put is a no-op, health says down; nothing raises."""
    from tests.support.servers import free_port

    client: AsyncMongoClient = create_client(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", 100)
    try:
        store = MongoStore(client["x"][COLLECTION])
        await store.start()
        assert store.status == "down"
        await store.put(doc(READ))
        assert await store.get(READ) is None
        assert await store.purge_patient("9000000009") is None  # failed, not "nothing to purge"
        health = await store.health()
        assert health["status"] == "down" and health["lastError"] == "ServerSelectionTimeoutError"
        assert health["indexes"] == "pending"
    finally:
        await client.close()


async def test_a_copy_requested_before_its_patients_purge_is_not_kept(store: CacheStore) -> None:
    requested = now() - timedelta(seconds=1)
    await store.purge_patient("9000000009")  # its tombstone: purged after `requested`
    await store.put(doc(READ, patients=("9000000009",), requestedAt=requested))
    assert await store.get(READ) is None
    await store.put(doc(SEARCH, patients=("9000000017", "9000000009"), requestedAt=requested))
    assert await store.get(SEARCH) is None  # any patient it names


async def test_a_purge_blocks_neither_later_requests_nor_other_patients_nor_restricted_copies(
    store: CacheStore,
) -> None:
    await store.purge_patient("9000000009")
    await asyncio.sleep(0.002)
    await store.put(doc(READ, patients=("9000000009",), requestedAt=now()))  # asked after the purge
    assert await store.get(READ) is not None
    other = CacheKey("read", "Patient", "9000000017")
    await store.put(doc(other, patients=("9000000017",), requestedAt=now() - timedelta(seconds=5)))
    assert await store.get(other) is not None
    restricted = CacheKey("read", "Patient", "9000000025")
    await store.purge_patient("9000000025")
    await store.put(doc(restricted, patients=("9000000025",), requestedAt=None))  # shows the restriction
    assert await store.get(restricted) is not None
