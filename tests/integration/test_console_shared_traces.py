"""The console's shared trace store on a real MongoDB: bounded, newest first, and never a
failure for the request when MongoDB is away."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient

from server.console.shared_traces import TRIM_EVERY, SharedTraces
from tests.support.mongo import MongoTarget


def trace(n: int) -> dict[str, object]:
    return {
        "request_id": f"req-{n}",
        "started": "2026-11-30T00:00:00.000+00:00",
        "method": "GET",
        "path": "/Patient/9000000009",
        "query": "",
        "status": 200,
        "duration_ms": 1.5,
        "redacted": False,
        "request_headers": {},
        "events": [{"kind": "access"}],
        "dropped_events": 0,
    }


@pytest.mark.mongo
async def test_traces_are_kept_newest_first_and_trimmed_to_about_the_capacity(mongo_db: MongoTarget) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_db.uri, tz_aware=True)
    try:
        collection = client[mongo_db.database]["traces_bounded"]
        shared = SharedTraces(collection, capacity=10)
        for n in range(TRIM_EVERY):
            shared.keep(trace(n))
            await shared.aclose()  # one at a time, so their order is the order kept
        assert await collection.count_documents({}) <= 10
        recent = await shared.recent(3)
        assert recent is not None and [t["request_id"] for t in recent] == [f"req-{n}" for n in (99, 98, 97)]
        assert recent[0]["events"] == 1 and recent[0]["status"] == 200
        found = await shared.get("req-99")
        assert found is not None and found["events"] == [{"kind": "access"}]
        assert await shared.get("req-0") is None  # trimmed
    finally:
        await client.close()


async def test_mongodb_away_loses_only_the_shared_copy() -> None:
    client: AsyncMongoClient = AsyncMongoClient("mongodb://127.0.0.1:1", serverSelectionTimeoutMS=200)
    try:
        shared = SharedTraces(client["x"]["y"], capacity=10)
        shared.keep(trace(1))
        await shared.aclose()  # the write failed with a warning, not an exception
        assert await shared.get("req-1") is None
        assert await shared.recent(5) is None  # the console falls back to this worker's own
    finally:
        await client.close()
