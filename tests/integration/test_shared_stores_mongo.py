"""The MongoDB page-snapshot store and the shared NHS rate budget, against a real MongoDB
wire server (tests/support/mongo.py): their rules one by one, and what happens when
MongoDB cannot be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from server import page_snapshots
from server.fhir.search_request import Include, SearchRequest, SortKey
from server.nhs.clock import MonotonicClock
from server.nhs.deadline import Deadline
from server.nhs.rate_limiter import TokenBucket
from server.nhs.refusals import NoSlot
from server.nhs.shared_rate_limiter import SharedTokenBucket
from server.page_snapshots import MongoSnapshotStore, TooLargeToPage
from tests.support.mongo import MongoTarget
from tests.support.servers import free_port

pytestmark = pytest.mark.mongo

REQUEST = SearchRequest(
    "Patient",
    count=2,
    summary="true",
    elements=("name",),
    includes=(Include("Patient", "general-practitioner", "Organization"),),
    sort=(SortKey("birthdate", True),),
    total="accurate",
    rev_includes=(Include("Observation", "subject"),),
)
MATCHES = [{"resourceType": "Patient", "id": f"p{i}", "name": [{"family": "Smith"}]} for i in range(3)]


@pytest.fixture
async def database(mongo_db: MongoTarget) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_db.uri, tz_aware=True)
    try:
        yield client[mongo_db.database]
    finally:
        await client.close()


@pytest.fixture
async def dead_database() -> AsyncIterator[Any]:
    """A database on a port nobody listens on: every operation fails fast."""
    uri = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=100)
    try:
        yield client["nowhere"]
    finally:
        await client.close()


async def test_snapshot_round_trip_keeps_what_paging_reads(database: Any) -> None:
    store = MongoSnapshotStore(database["page_snapshots"], ttl=60, limit=10)
    await store.start()
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "suppressed"}]}
    key = await store.put(REQUEST, MATCHES, outcome, [("family", "Smith")], {"p0": 0.5}, owner="alice")
    other = MongoSnapshotStore(database["page_snapshots"], ttl=60, limit=10)  # another process
    snap = await other.get(key)
    assert snap is not None and snap.owner == "alice"
    assert list(snap.matches) == MATCHES and snap.outcome == outcome
    assert snap.self_pairs == (("family", "Smith"),) and snap.scores == {"p0": 0.5}
    assert snap.request == REQUEST  # the parsed parameters were never there: they were applied
    assert await other.get("never-made") is None
    doc = await database["page_snapshots"].find_one({"_id": key})
    assert "Smith" not in str(doc)  # the body is compressed bytes, not searchable fields


async def test_snapshot_expires_after_ttl_even_before_the_sweep(database: Any) -> None:
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    store = MongoSnapshotStore(database["page_snapshots"], ttl=60, limit=10, clock=lambda: now[0])
    key = await store.put(REQUEST, MATCHES, None, [], {}, owner="o")
    reader = MongoSnapshotStore(database["page_snapshots"], ttl=60, limit=10, clock=lambda: now[0])
    now[0] += timedelta(seconds=59)
    assert await reader.get(key) is not None
    now[0] += timedelta(seconds=1)
    assert await reader.get(key) is None


async def test_snapshot_count_is_bounded_oldest_first(database: Any) -> None:
    store = MongoSnapshotStore(database["page_snapshots"], ttl=60, limit=2)
    keys = [await store.put(REQUEST, MATCHES, None, [], {}, owner="o") for _ in range(4)]
    assert await database["page_snapshots"].count_documents({}) == 2
    assert [await store.get(k) is not None for k in keys] == [False, False, True, True]


async def test_a_snapshot_too_big_for_one_document_is_refused(database: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page_snapshots, "MAX_BODY_BYTES", 64)
    store = MongoSnapshotStore(database["page_snapshots"], ttl=60, limit=10)
    with pytest.raises(TooLargeToPage) as refused:
        await store.put(REQUEST, MATCHES * 10, None, [], {}, owner="o")
    assert refused.value.status == 422 and refused.value.issue_code == "too-costly"
    assert await database["page_snapshots"].count_documents({}) == 0


async def test_snapshots_stay_in_process_while_mongodb_is_down(dead_database: Any) -> None:
    store = MongoSnapshotStore(dead_database["page_snapshots"], ttl=60, limit=10)
    await store.start()  # no index yet, no failure
    key = await store.put(REQUEST, MATCHES, None, [], {}, owner="o")
    snap = await store.get(key)
    assert snap is not None and list(snap.matches) == MATCHES
    assert await store.get("elsewhere") is None  # MongoDB unreadable: a miss (410), not a 500


def shared(collection: Any, rate: float, api: str = "PDS") -> SharedTokenBucket:
    return SharedTokenBucket(api, rate, collection, TokenBucket(api, rate, MonotonicClock()))


async def test_shared_bucket_spaces_two_processes_and_refuses_past_the_budget(database: Any) -> None:
    clock = MonotonicClock()
    one, two = shared(database["nhs_rate_budget"], 4), shared(database["nhs_rate_budget"], 4)
    start = clock.now()
    await one.acquire(Deadline.after(clock, 5))
    await two.acquire(Deadline.after(clock, 5))  # the other process waits for the next slot
    assert clock.now() - start >= 0.25 - 0.02
    with pytest.raises(NoSlot) as refused:
        await one.acquire(Deadline.after(clock, 0.1))  # the next slot is ~250 ms away
    assert 0.1 < (refused.value.retry_after or 0) <= 0.3
    # A refusal takes nothing: the slot is still there for a caller that can wait.
    before = clock.now()
    await two.acquire(Deadline.after(clock, 5))
    assert clock.now() - before <= 0.3
    other_api = shared(database["nhs_rate_budget"], 4, api="ERS")
    before = clock.now()
    await other_api.acquire(Deadline.after(clock, 5))  # one budget per API
    assert clock.now() - before < 0.1


async def test_shared_bucket_falls_back_to_the_process_bucket_when_mongodb_is_down(dead_database: Any) -> None:
    clock = MonotonicClock()
    bucket = shared(dead_database["nhs_rate_budget"], 5)
    await bucket.acquire(Deadline.after(clock, 5))  # MongoDB unreachable: the local bucket admits
    start = clock.now()
    await bucket.acquire(Deadline.after(clock, 5))  # local now, at once: no second MongoDB timeout
    assert 0.15 <= clock.now() - start < 0.35  # and it still spaces at 5/s
