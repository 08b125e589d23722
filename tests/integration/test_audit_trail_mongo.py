"""The audit trail over real I/O: the trail contract against the in-memory trail and the
MongoDB trail (AsyncMongoClient over a socket: SecantusDB, or FACADE_TEST_MONGODB_URI),
then what only the MongoDB trail has: its documents, indexes and write concern, insert
only, MongoDB down at start, both MongoDB and the spool failing (fail closed), a spool
left by a stopped process, and the issue's test: MongoDB killed during a burst and
restarted, every event then found exactly once, drained in spool order."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError

from server.access.access_record import AccessRecord
from server.access.audit_event import AuditNote
from server.access.audit_spool import AuditSpool
from server.access.audit_trail import COLLECTION, AuditTrail, AuditUnavailable, InMemoryAuditTrail, MongoAuditTrail
from server.access.principal import Principal
from server.access.scopes import ScopeSet
from server.mongodb import create_client
from tests.support.audit_events import BASE_TIME, audit_event
from tests.support.mongo import MongoTarget, SecantusProcess

pytestmark = pytest.mark.mongo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(condition: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture(params=["memory", "mongodb"])
async def trail(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditTrail]:
    if request.param == "memory":
        yield InMemoryAuditTrail()
        return
    target: MongoTarget = request.getfixturevalue("mongo_db")
    client = create_client(target.uri, 2000)
    mongo = MongoAuditTrail(client[target.database], AuditSpool(tmp_path / "spool"))
    try:
        await mongo.start()
        yield mongo
    finally:
        await mongo.aclose()
        await client.close()


@pytest.fixture
async def database(mongo_db: MongoTarget) -> AsyncIterator[Any]:
    client: AsyncMongoClient = create_client(mongo_db.uri, 2000)
    try:
        yield client[mongo_db.database]
    finally:
        await client.close()


# --- the contract, both trails ------------------------------------------------------------


async def test_append_get_and_find_newest_first(trail: AuditTrail) -> None:
    events = [
        audit_event(
            event_id=f"e{n}",
            minutes=n,
            patients=[f"900000000{n % 2}"],
            user=f"u{n % 3}",
            subtype=("read", "search-type", "create")[n % 3],
            outcome=("0", "4")[n % 2],
        )
        for n in range(6)
    ]
    for event in reversed(events):  # stored out of time order: found in time order
        await trail.append(event)
    stored = await trail.get("e3")
    assert stored == events[3]
    assert await trail.get("missing") is None
    assert [e["id"] for e in await trail.find()] == ["e5", "e4", "e3", "e2", "e1", "e0"]
    assert [e["id"] for e in await trail.find(limit=2)] == ["e5", "e4"]
    assert [e["id"] for e in await trail.find(patient="Patient/9000000001")] == ["e5", "e3", "e1"]
    assert [e["id"] for e in await trail.find(agent="u1")] == ["e4", "e1"]
    assert [e["id"] for e in await trail.find(agent="clinic-app", outcome="4")] == ["e5", "e3", "e1"]
    assert [e["id"] for e in await trail.find(types=["read", "create"])] == ["e5", "e3", "e2", "e0"]
    assert [e["id"] for e in await trail.find(types=["rest"], patient="Patient/9000000000")] == ["e4", "e2", "e0"]
    # recorded_from <= recorded < recorded_to
    start, end = BASE_TIME + timedelta(minutes=1), BASE_TIME + timedelta(minutes=4)
    assert [e["id"] for e in await trail.find(recorded_from=start, recorded_to=end)] == ["e3", "e2", "e1"]
    assert trail.status() == "ok"


async def test_an_access_recorded_is_found_as_its_event(trail: AuditTrail) -> None:
    """`record` (the façade's own accesses) stores what `append(access.event())` would."""
    principal = Principal(
        subject="u-record",
        issuer="https://issuer.example",
        scopes=ScopeSet.parse("user/*.rs"),
        client_id="clinic-app",
        organisation_ods="RX1",
        purpose="TREAT",
    )
    note = AuditNote(
        request_id="r-record",
        method="GET",
        target="/Patient/9000000009/$everything",
        client_address="127.0.0.1",
        interaction="operation",
        resource_type="Patient",
        patients=["Patient/9000000009"],
        resources=["Patient/9000000009", "AllergyIntolerance/a1"],
        operation="everything",
    )
    access = AccessRecord.of(note, principal, 200, observer="https://facade.example", now=BASE_TIME)
    await trail.record(access)
    await trail.record(access)  # once, as append
    assert await trail.get(access.event_id) == access.event()
    assert [e["id"] for e in await trail.find(patient="Patient/9000000009")] == [access.event_id]
    for agent in ("u-record", "clinic-app", "RX1"):
        assert [e["id"] for e in await trail.find(agent=agent, outcome="0")] == [access.event_id], agent
    assert [e["id"] for e in await trail.find(types=["everything"])] == [access.event_id]
    assert await trail.find(patient="Patient/9000000017") == []
    assert await trail.find(recorded_from=BASE_TIME + timedelta(milliseconds=1)) == []


async def test_the_same_event_twice_is_stored_once_unchanged(trail: AuditTrail) -> None:
    event = audit_event(event_id="once")
    await trail.append(event)
    await trail.append({**event, "outcome": "12"})  # append-only: never replaced
    assert [e["outcome"] for e in await trail.find()] == ["0"]


async def test_equal_instants_and_other_zones(trail: AuditTrail) -> None:
    same = BASE_TIME.astimezone(timezone(timedelta(hours=5, minutes=30)))
    await trail.append(audit_event(event_id="a", recorded=BASE_TIME))
    await trail.append(audit_event(event_id="b", recorded=same))  # the same instant, written in IST
    await trail.append(audit_event(event_id="c", recorded=BASE_TIME - timedelta(milliseconds=1)))
    found = await trail.find(recorded_from=BASE_TIME, recorded_to=BASE_TIME + timedelta(milliseconds=1))
    assert sorted(e["id"] for e in found) == ["a", "b"]
    assert [e["id"] for e in await trail.find()][-1] == "c"


# --- MongoDB only -------------------------------------------------------------------------


async def test_documents_indexes_and_write_concern(database: Any, tmp_path: Path) -> None:
    trail = MongoAuditTrail(database, AuditSpool(tmp_path))
    await trail.start()
    try:
        event = audit_event(event_id="doc-1", others=["MedicationRequest/abc"])
        await trail.append(event)
        doc = await database[COLLECTION].find_one({"_id": "doc-1"})
        assert doc == {
            "_id": "doc-1",
            "event": event,
            "patients": ["Patient/9000000009"],
            "agents": ["555254242106", "clinic-app"],
            "recorded": BASE_TIME,
            "outcome": "0",
            "types": ["rest", "read"],
            "action": "R",
        }
        info = await database[COLLECTION].index_information()
        keys = {name: [k for k, _ in spec["key"]] for name, spec in info.items()}
        assert keys["patients_recorded"] == ["patients", "recorded"]
        assert keys["agents_recorded"] == ["agents", "recorded"]
        assert keys["recorded"] == ["recorded"]
        assert not any("expireAfterSeconds" in spec for spec in info.values()), "audit events never expire"
        assert trail.collection.write_concern.document == {"w": "majority", "j": True}
        assert trail.backend == "mongodb" and trail.status() == "ok"
    finally:
        await trail.aclose()


async def test_an_event_bson_cannot_hold_is_stored_as_json_text(database: Any, tmp_path: Path) -> None:
    trail = MongoAuditTrail(database, AuditSpool(tmp_path))
    await trail.start()
    try:
        event = audit_event(event_id="big")
        event["extension"] = [{"url": "urn:x", "valueInteger64": 2**63}]  # JSON (orjson) can, BSON cannot
        await trail.append(event)
        assert await trail.get("big") == event
        doc = await database[COLLECTION].find_one({"_id": "big"})
        assert "event" not in doc and orjson.loads(doc["eventJson"]) == event and doc["patients"]
    finally:
        await trail.aclose()


async def test_mongodb_down_at_start_spools_then_fails_reads_closed(tmp_path: Path) -> None:
    client: AsyncMongoClient = create_client(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", 100)
    spool = AuditSpool(tmp_path / "spool")
    trail = MongoAuditTrail(client["x"], spool, retry_initial=0.05, retry_max=0.2)
    try:
        await trail.start()  # a dead MongoDB does not stop the façade
        assert trail.status() == "degraded"
        await trail.append(audit_event(event_id="kept-1"))  # tries MongoDB once, then the spool
        started = time.monotonic()
        await trail.append(audit_event(event_id="kept-2"))  # straight to the spool behind it
        assert time.monotonic() - started < 0.09
        assert trail.status() == "spooling"
        assert [orjson.loads(line)["id"] for line in spool.path.read_bytes().splitlines()] == ["kept-1", "kept-2"]
        for call in (lambda: trail.find(), lambda: trail.get("kept-1")):
            with pytest.raises(AuditUnavailable):
                await call()
    finally:
        await trail.aclose()
        await client.close()
    assert spool.path.exists(), "undrained events stay on disk for the next start"


async def test_mongodb_down_and_the_spool_unusable_refuses(tmp_path: Path) -> None:
    client: AsyncMongoClient = create_client(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", 100)
    not_a_directory = tmp_path / "spool"
    not_a_directory.write_text("a file where the spool directory should be")
    trail = MongoAuditTrail(client["x"], AuditSpool(not_a_directory), retry_initial=0.05, retry_max=0.2)
    try:
        await trail.start()
        assert trail.status() == "degraded"
        for n in range(3):
            with pytest.raises(AuditUnavailable):
                await trail.append(audit_event(event_id=f"lost-{n}"))
        assert trail.status() == "degraded"
    finally:
        await trail.aclose()
        await client.close()


async def test_a_spool_directory_that_appears_later_is_used(database: Any, tmp_path: Path) -> None:
    blocked = tmp_path / "spool"
    blocked.write_text("not yet a directory")
    trail = MongoAuditTrail(database, AuditSpool(blocked), orphan_scan_interval=0.1)
    await trail.start()
    try:
        assert trail.status() == "degraded"  # MongoDB is up, but an outage now would refuse every access
        await trail.append(audit_event(event_id="via-mongodb"))  # MongoDB takes it meanwhile
        blocked.unlink()  # the operator fixes the directory
        await wait_for(lambda: trail.status() == "ok", timeout=10, what="the spool to be opened again")
        assert trail.spool.path.exists()
    finally:
        await trail.aclose()


async def test_a_cancelled_caller_still_gets_its_access_recorded(database: Any, tmp_path: Path) -> None:
    trail = MongoAuditTrail(database, AuditSpool(tmp_path))
    await trail.start()
    try:
        caller = asyncio.create_task(trail.append(audit_event(event_id="hung-up")))
        await asyncio.sleep(0)  # the write has begun
        caller.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await caller
        await wait_for(lambda: not trail._writes, what="the write to finish")
        assert await trail.get("hung-up") is not None
    finally:
        await trail.aclose()


async def test_cancelled_callers_while_mongodb_is_down_neither_lose_events_nor_hang(tmp_path: Path) -> None:
    """Cancelling a PyMongo call that waits for a server can leave it hanging for ever
    (seen with PyMongo 4.20 on Python 3.11): appends never let a cancellation reach one."""
    client: AsyncMongoClient = create_client(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", 100)
    spool = AuditSpool(tmp_path)
    trail = MongoAuditTrail(client["x"], spool, retry_initial=0.05, retry_max=0.2)
    try:
        await trail.start()
        callers = [asyncio.create_task(trail.append(audit_event(event_id=f"c{n}"))) for n in range(4)]
        await asyncio.sleep(0.03)  # all waiting for a server
        for caller in callers[:2]:
            caller.cancel()
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert [type(r).__name__ for r in results] == ["CancelledError", "CancelledError", "NoneType", "NoneType"]
        await asyncio.wait_for(trail.aclose(), 10)
        assert sorted(orjson.loads(line)["id"] for line in spool.path.read_bytes().splitlines()) == [
            "c0",
            "c1",
            "c2",
            "c3",
        ]
    finally:
        await client.close()


class BrokenSpool(AuditSpool):
    """Events wait in it, and it cannot take more (a disk that just filled up)."""

    def holds_own_events(self) -> bool:
        return True

    async def append(self, event: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")


async def test_a_failing_spool_falls_back_to_mongodb(database: Any, tmp_path: Path) -> None:
    trail = MongoAuditTrail(database, BrokenSpool(tmp_path))
    await trail.ensure_indexes()
    await trail.append(audit_event(event_id="stored-anyway"))  # out of spool order, but stored
    assert await trail.get("stored-anyway") is not None
    assert trail.status() == "spooling"  # the broken spool claims to hold events


async def test_a_spool_left_by_a_stopped_process_is_drained_at_the_next_start(database: Any, tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    earlier = AuditSpool(directory)
    for n in range(5):
        await earlier.append(audit_event(event_id=f"left-{n}", minutes=n))
    await earlier.aclose()  # the process stops with MongoDB still away: the file stays
    assert earlier.path.exists()
    trail = MongoAuditTrail(database, AuditSpool(directory), retry_initial=0.05)
    await trail.start()
    try:
        await wait_for(lambda: trail.status() == "ok", what="the drain of the left file")
        assert [e["id"] for e in await trail.find()] == [f"left-{n}" for n in reversed(range(5))]
        assert not earlier.path.exists()
    finally:
        await trail.aclose()


async def test_drain_resumes_after_a_partial_batch(database: Any, tmp_path: Path) -> None:
    """Some spooled events are already in MongoDB (sent, never acknowledged): the drain
    counts them as stored and goes on with the rest, in order."""
    spool = AuditSpool(tmp_path)
    events = [audit_event(event_id=f"p{n}", minutes=n) for n in range(6)]
    for event in events:
        await spool.append(event)
    trail = MongoAuditTrail(database, spool, batch_size=4, retry_initial=0.05)
    for event in (events[1], events[4]):  # reached MongoDB before the connection dropped
        await database[COLLECTION].insert_one({"_id": event["id"], "event": event})
    await trail.start()
    try:
        await wait_for(lambda: not spool.has_pending(), what="the drain")
        assert await database[COLLECTION].count_documents({}) == 6
        assert sorted(d["_id"] for d in await database[COLLECTION].find({}, {"_id": 1}).to_list(None)) == [
            f"p{n}" for n in range(6)
        ]
    finally:
        await trail.aclose()


# --- group commit ------------------------------------------------------------------------


class CountingCollection:
    """The real collection, counting the writes that reach MongoDB."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)

    async def insert_one(self, doc: dict[str, Any], **kwargs: Any) -> Any:
        self.writes += 1
        return await self.collection.insert_one(doc, **kwargs)

    async def insert_many(self, docs: list[Any], **kwargs: Any) -> Any:
        self.writes += 1
        return await self.collection.insert_many(docs, **kwargs)


async def test_concurrent_events_share_writes_and_each_is_stored_once(database: Any, tmp_path: Path) -> None:
    trail = MongoAuditTrail(database, AuditSpool(tmp_path / "spool"))
    counting = CountingCollection(trail.collection)
    trail.collection = counting  # type: ignore[assignment]
    await trail.start()
    try:
        events = [audit_event(minutes=n) for n in range(200)]
        await asyncio.gather(*(trail.append(e) for e in events))
        await trail.append(events[0])  # an event sent again is stored once
        assert counting.writes < len(events) // 2  # group-committed: events waiting together went together
        stored = sorted(d["_id"] for d in await database[COLLECTION].find({}, {"_id": 1}).to_list(None))
        assert stored == sorted(e["id"] for e in events)
        assert not trail.spool.has_pending()
    finally:
        await trail.aclose()


# --- MongoDB killed during a burst --------------------------------------------------------


class RecordingCollection:
    """The real collection, noting which ids each successful insert stored, in order."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.direct: list[str] = []
        self.drained: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)

    async def insert_one(self, doc: dict[str, Any], **kwargs: Any) -> Any:
        result = await self.collection.insert_one(doc, **kwargs)
        self.direct.append(doc["_id"])
        return result

    async def insert_many(self, docs: list[Any], **kwargs: Any) -> Any:
        """Unordered: group-committed direct inserts (several requests' events in one write);
        ordered: the spool's drain, in spool order."""
        direct = kwargs.get("ordered", True) is False
        try:
            result = await self.collection.insert_many(docs, **kwargs)
        except BulkWriteError as exc:
            if direct:
                failed = {e["index"] for e in exc.details.get("writeErrors", []) if e.get("code") != 11000}
                self.direct += [d["_id"] for i, d in enumerate(docs) if i not in failed]
            else:
                errors = exc.details.get("writeErrors") or [{"index": 0}]
                self.drained += [d["_id"] for d in docs[: errors[0]["index"]]]
            raise
        (self.direct if direct else self.drained).extend(d["_id"] for d in docs)
        return result


async def test_mongodb_killed_during_a_burst_every_event_stored_exactly_once(tmp_path: Path) -> None:
    server = SecantusProcess(storage_path=tmp_path / "db")
    await asyncio.to_thread(server.start)
    client: AsyncMongoClient = create_client(server.uri, 300)
    spool = AuditSpool(tmp_path / "spool")
    trail = MongoAuditTrail(client["audit_kill_test"], spool, retry_initial=0.05, retry_max=0.5)
    recorder = RecordingCollection(trail.collection)
    trail.collection = recorder  # type: ignore[assignment]
    total, kill_after = 600, 200
    events = [audit_event(minutes=n / 100, user=f"u{n % 7}") for n in range(total)]
    try:
        await trail.start()
        appended = 0

        async def one(event: dict[str, Any]) -> None:
            nonlocal appended
            await trail.append(event)
            appended += 1

        async def killer() -> None:
            await wait_for(lambda: appended >= kill_after, what="the first part of the burst")
            await asyncio.to_thread(server.kill)  # SIGKILL while appends are in flight

        kill = asyncio.create_task(killer())
        tasks = []
        for start in range(0, total, 20):  # 20 requests at a time, arriving while others are in flight
            tasks += [asyncio.create_task(one(e)) for e in events[start : start + 20]]
            await asyncio.sleep(0.01)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await kill
        assert [r for r in results if r is not None] == [], "no access refused: the spool took what MongoDB could not"
        assert trail.status() == "spooling"
        spooled = [orjson.loads(line)["id"] for line in spool.path.read_bytes().splitlines()]
        # Killed part way: a good share of the burst went to the spool, each event once.
        assert total // 4 <= len(spooled) < total and len(set(spooled)) == len(spooled)

        await asyncio.to_thread(server.start)  # same port, same data directory
        await wait_for(lambda: trail.status() == "ok", timeout=60, what="the spool to drain")
        assert spool.path.stat().st_size == 0

        stored = await trail.find(limit=10 * total)
        stored_ids = [e["id"] for e in stored]
        assert len(stored_ids) == total and set(stored_ids) == {e["id"] for e in events}, "every event exactly once"
        assert await client["audit_kill_test"][COLLECTION].count_documents({}) == total
        assert stored_ids == [e["id"] for e in reversed(events)]  # newest first (recorded rises with n)
        # Drained in spool order: what the drainer inserted is the spool's order, less the
        # events MongoDB already had (sent before the kill, never acknowledged).
        assert recorder.drained == [i for i in spooled if i in set(recorder.drained)]
        assert recorder.drained, "the drainer stored the spooled events"
        assert not set(recorder.drained) & set(recorder.direct), "no event inserted twice"
        assert set(recorder.direct) | set(spooled) == set(stored_ids)
    finally:
        await trail.aclose()
        await client.close()
        server.stop()
