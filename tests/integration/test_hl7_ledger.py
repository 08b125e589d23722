"""The HL7 delivery ledger's contract, in memory and in MongoDB over its real socket: a
resend gets the first ACK, a reused control id on other bytes is told apart, an AR
releases the claim, and a claim left busy by a dead worker is taken over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from pymongo import AsyncMongoClient

from server.pas import hl7_ledger
from server.pas.hl7_ledger import Claim, DeliveryLedger, LedgerUnavailable, MemoryLedger, MongoLedger, NoLedger
from tests.support.mongo import MongoTarget

pytestmark = pytest.mark.mongo
KEY = "PAS|RX1|CTRL42"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "mongodb"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[DeliveryLedger]:
    if request.param == "memory":
        yield MemoryLedger(seconds=60)
        return
    target: MongoTarget = request.getfixturevalue("mongo_db")
    client: AsyncMongoClient = AsyncMongoClient(target.uri, tz_aware=True, serverSelectionTimeoutMS=2000)
    try:
        yield MongoLedger(client[target.database][hl7_ledger.COLLECTION], seconds=60)
    finally:
        await client.close()


async def test_a_resend_gets_the_first_ack_and_other_bytes_are_told_apart(ledger: DeliveryLedger) -> None:
    assert await ledger.claim(KEY, "digest-1") == Claim("new")
    await ledger.finish(KEY, "ACK-1")
    assert await ledger.claim(KEY, "digest-1") == Claim("done", "ACK-1")
    assert await ledger.claim(KEY, "digest-2") == Claim("different")
    assert await ledger.claim("PAS|RX1|CTRL43", "digest-1") == Claim("new")  # another control id


async def test_a_released_claim_is_applied_on_the_resend(ledger: DeliveryLedger) -> None:
    assert await ledger.claim(KEY, "d") == Claim("new")
    await ledger.release(KEY)  # AR: not applied
    assert await ledger.claim(KEY, "d") == Claim("new")


async def test_a_resend_waits_for_the_same_message_in_progress_then_gets_its_ack(ledger: DeliveryLedger) -> None:
    assert await ledger.claim(KEY, "d") == Claim("new")
    waiting = asyncio.create_task(ledger.claim(KEY, "d"))
    await asyncio.sleep(0.12)
    assert not waiting.done()  # busy on another connection: the resend waits
    await ledger.finish(KEY, "ACK")
    assert await asyncio.wait_for(waiting, 2) == Claim("done", "ACK")


async def test_a_claim_left_busy_by_a_dead_worker_is_taken_over(mongo_db: MongoTarget) -> None:
    ticks = [0.0]
    memory = MemoryLedger(seconds=600, monotonic=lambda: ticks[0])
    assert await memory.claim(KEY, "d") == Claim("new")
    ticks[0] += hl7_ledger.STALE_CLAIM_SECONDS + 1
    assert await memory.claim(KEY, "d") == Claim("new")

    clock = Clock()
    client: AsyncMongoClient = AsyncMongoClient(mongo_db.uri, tz_aware=True, serverSelectionTimeoutMS=2000)
    try:
        mongo = MongoLedger(client[mongo_db.database]["hl7_stale"], seconds=600, clock=clock)
        assert await mongo.claim(KEY, "d") == Claim("new")
        clock.now += timedelta(seconds=hl7_ledger.STALE_CLAIM_SECONDS + 1)
        assert await mongo.claim(KEY, "d") == Claim("new")
    finally:
        await client.close()


async def test_an_entry_past_its_window_is_forgotten(mongo_db: MongoTarget) -> None:
    ticks = [0.0]
    memory = MemoryLedger(seconds=10, monotonic=lambda: ticks[0])
    await memory.claim(KEY, "d")
    await memory.finish(KEY, "ACK")
    ticks[0] += 11
    assert await memory.claim(KEY, "other") == Claim("new")

    clock = Clock()
    client: AsyncMongoClient = AsyncMongoClient(mongo_db.uri, tz_aware=True, serverSelectionTimeoutMS=2000)
    try:
        mongo = MongoLedger(client[mongo_db.database]["hl7_window"], seconds=10, clock=clock)
        await mongo.claim(KEY, "d")
        await mongo.finish(KEY, "ACK")
        clock.now += timedelta(seconds=11)  # before the TTL monitor's sweep: checked on read
        assert await mongo.claim(KEY, "other") == Claim("new")
    finally:
        await client.close()


async def test_mongodb_unreachable_is_ledger_unavailable() -> None:
    client: AsyncMongoClient = AsyncMongoClient("mongodb://127.0.0.1:1", serverSelectionTimeoutMS=200)
    try:
        with pytest.raises(LedgerUnavailable):
            await MongoLedger(client["x"]["y"], seconds=60).claim(KEY, "d")
    finally:
        await client.close()


async def test_no_ledger_applies_everything() -> None:
    none = NoLedger()
    assert await none.claim(KEY, "d") == Claim("new")
    await none.finish(KEY, "ACK")
    assert await none.claim(KEY, "d") == Claim("new")
