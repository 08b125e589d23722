"""The near cache: copies of what the shared store answered, kept at most `seconds`,
dropped at once by this process's purges, deletes and writes."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from server.cache.memory import MemoryStore
from server.cache.near import NEAR_MAX_ENTRIES, NearCachedStore
from server.cache.store import CacheKey, Document

JANE = CacheKey("read", "Patient", "9000000009")
SMITHS = CacheKey("search", "Patient", "family=Smith")


class Shared(MemoryStore):
    """The deployment's shared store, as seen by every process; counts gets, can be slowed."""

    def __init__(self) -> None:
        super().__init__(max_entries=1000)
        self.gets = 0
        self.hold: asyncio.Event | None = None

    async def get(self, key: CacheKey) -> Document | None:
        self.gets += 1
        doc = await super().get(key)
        if self.hold is not None:
            await self.hold.wait()
        return doc


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def entry(key: CacheKey, city: str = "Leeds", patients: tuple[str, ...] = ("9000000009",), **extra: Any) -> Document:
    now = datetime.now(timezone.utc)
    return {
        **key.as_filter(),
        "resource": {"resourceType": "Patient", "id": key.key, "address": [{"city": city}]},
        "patients": list(patients),
        "fetchedAt": now,
        "expiresAt": now + timedelta(seconds=60),
        "requestedAt": None,
        **extra,
    }


@pytest.fixture
def shared() -> Shared:
    return Shared()


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def near(shared: Shared, ticks: Ticks) -> NearCachedStore:
    return NearCachedStore(shared, seconds=1.0, monotonic=ticks)


async def test_a_second_get_within_the_bound_does_not_ask_the_shared_store(near, shared) -> None:
    await shared.put(entry(JANE))
    first, second = await near.get(JANE), await near.get(JANE)
    assert first == second and first is not None and first["resource"]["address"][0]["city"] == "Leeds"
    assert shared.gets == 1


async def test_a_change_made_by_another_process_is_seen_once_the_copy_lapses(near, shared, ticks) -> None:
    await shared.put(entry(JANE))
    await near.get(JANE)
    await shared.put(entry(JANE, city="York"))  # another worker revalidated
    ticks.now += 0.9
    held = await near.get(JANE)
    assert held is not None and held["resource"]["address"][0]["city"] == "Leeds"  # within the bound
    ticks.now += 0.2
    fresh = await near.get(JANE)
    assert fresh is not None and fresh["resource"]["address"][0]["city"] == "York"


async def test_a_purge_by_another_process_reaches_this_one_within_the_bound(near, shared, ticks) -> None:
    await shared.put(entry(JANE))
    await near.get(JANE)
    await shared.purge_patient("9000000009")  # another replica found the patient restricted
    ticks.now += 1.0
    assert await near.get(JANE) is None


async def test_a_purge_delete_or_write_through_this_process_drops_copies_at_once(near, shared) -> None:
    await shared.put(entry(JANE))
    await shared.put(entry(SMITHS, patients=("9000000009", "9000000017")))
    await near.get(JANE), await near.get(SMITHS)
    assert await near.purge_patient("9000000009") == 2
    assert await near.get(JANE) is None and await near.get(SMITHS) is None
    await near.put(entry(JANE))
    await near.get(JANE)
    await near.delete(JANE)
    assert await near.get(JANE) is None
    await near.put(entry(JANE))
    await near.get(JANE)
    await near.put(entry(JANE, city="York"))
    changed = await near.get(JANE)
    assert changed is not None and changed["resource"]["address"][0]["city"] == "York"


async def test_a_copy_read_while_a_purge_was_under_way_is_not_kept(near, shared) -> None:
    await shared.put(entry(JANE))
    shared.hold = asyncio.Event()
    reading = asyncio.create_task(near.get(JANE))  # has read the old copy; its answer is delayed
    await asyncio.sleep(0)
    await near.purge_patient("9000000009")
    shared.hold.set()
    assert await reading is not None  # that request was in flight with it (the stated bound)
    shared.hold = None
    gets = shared.gets
    assert await near.get(JANE) is None and shared.gets == gets + 1  # not served from a near copy


async def test_an_entry_past_its_own_expiry_is_not_served_from_a_copy(near, shared) -> None:
    now = datetime.now(timezone.utc)
    await shared.put(entry(JANE, expiresAt=now + timedelta(milliseconds=50)))
    assert await near.get(JANE) is not None
    await asyncio.sleep(0.06)
    assert await near.get(JANE) is None


async def test_copies_are_copies_and_bounded(near, shared) -> None:
    await shared.put(entry(JANE))
    first = await near.get(JANE)
    assert first is not None
    first["resource"]["address"][0]["city"] = "Changed"
    again = await near.get(JANE)
    assert again is not None and again["resource"]["address"][0]["city"] == "Leeds"
    for n in range(NEAR_MAX_ENTRIES + 10):
        key = CacheKey("read", "Patient", str(n))
        await shared.put(entry(key))
        await near.get(key)
    assert len(near._copies) == NEAR_MAX_ENTRIES
    health = await near.health()
    assert health["nearCache"] == {"seconds": 1.0, "entries": NEAR_MAX_ENTRIES} and health["backend"] == "memory"
