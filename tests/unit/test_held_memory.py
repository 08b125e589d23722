"""Bytes kept for minutes are kept at their own size, and the sandbox's audit trail is no
work for the garbage collector.

orjson.dumps answers in a buffer it never shrinks (server/held_json.py): kept in the
memory cache or the in-memory audit trail, each entry held 16-32 KB for 1.5-2.3 KB of
JSON, and a worker's RSS went past issue 11's 150 MB. These tests measure allocations
with tracemalloc, so they fail if either store keeps orjson's buffer again.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import orjson

from server.access.access_record import AccessRecord
from server.access.audit_event import AuditNote, audit_event
from server.access.audit_trail import InMemoryAuditTrail
from server.access.principal import Principal
from server.access.scopes import ScopeSet
from server.cache.store import FrozenDoc
from server.held_json import held_json

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "9000000009",
    "meta": {"versionId": "2"},
    "name": [{"family": "Smith", "given": ["Jane"], "text": "x" * 1400}],
}
# Allocator and object headers above the bytes themselves, per object.
SLACK = 96


def _kept_bytes(make: Any, count: int) -> float:
    """Bytes still allocated per object after `count` calls of `make`, whatever they freed."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = [make(n) for n in range(count)]
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return size / count


def test_held_json_is_orjson_s_bytes_at_their_own_size() -> None:
    assert held_json(PATIENT) == orjson.dumps(PATIENT)
    length = len(orjson.dumps(PATIENT))
    assert _kept_bytes(lambda n: held_json({**PATIENT, "id": str(n)}), 200) < length + SLACK


def test_the_memory_cache_keeps_bodies_at_their_own_size() -> None:
    length = len(orjson.dumps(PATIENT))
    per_entry = _kept_bytes(lambda n: FrozenDoc.of({"key": str(n), "resource": {**PATIENT, "id": str(n)}}), 200)
    # the body, plus the entry's small dicts and tuple; orjson's buffer alone was 16 KB
    assert per_entry < length + 1200
    thawed = FrozenDoc.of({"key": "k", "resource": PATIENT}).thaw()
    assert thawed["resource"] == PATIENT


def _principal() -> Principal:
    return Principal(
        subject="user-1",
        issuer="https://issuer.example",
        scopes=ScopeSet.parse("user/*.rs"),
        roles=frozenset({"clinician"}),
        client_id="client-1",
        purpose="TREAT",
        organisation_ods="RX1",
    )


def _note(n: int) -> AuditNote:
    """The note of a read of patient 9000000000 + n."""
    patient = f"Patient/{9000000000 + n}"
    return AuditNote(
        request_id=f"r{n}",
        method="GET",
        target=f"/{patient}",
        client_address="127.0.0.1",
        interaction="read",
        resource_type="Patient",
        patients=[patient],
        resources=[patient],
    )


def _event(n: int) -> dict[str, Any]:
    return audit_event(_note(n), _principal(), 200, observer="https://facade.example")


async def test_the_in_memory_audit_trail_holds_an_event_in_little_more_than_its_json() -> None:
    events = [_event(n) for n in range(500)]
    length = len(orjson.dumps(events[0]))
    trail = InMemoryAuditTrail()
    gc.collect()
    tracemalloc.start()
    try:
        for event in events:
            await trail.append(event)
        per_event = tracemalloc.get_traced_memory()[0] / len(events)
    finally:
        tracemalloc.stop()
    # JSON, index fields and the trail's own entry; 4.8 KB an event before (for 2.3 KB of JSON)
    assert per_event < length + 700
    assert await trail.get(events[7]["id"]) == events[7]
    assert [e["id"] for e in await trail.find(patient="Patient/9000000007")] == [events[7]["id"]]


async def test_held_audit_events_are_not_rescanned_by_the_collector() -> None:
    trail = InMemoryAuditTrail()
    events = [_event(n) for n in range(1000)]
    gc.collect()
    before = len(gc.get_objects())
    for event in events:
        await trail.append(event)
    # A pass over a tuple of untracked things stops tracking it; an entry seen before its
    # inner tuples were untracked is untracked by the next pass.
    gc.collect()
    gc.collect()
    tracked = len(gc.get_objects()) - before
    assert tracked < 50, f"{tracked} more objects tracked after holding 1,000 events"


async def test_an_access_recorded_in_memory_is_kept_without_its_event_built() -> None:
    """The façade's own accesses (AccessControl.record) are kept as their records: under
    half the memory of the event's JSON, and the event is built when it is read."""
    principal = _principal()
    notes = [_note(n) for n in range(500)]
    trail = InMemoryAuditTrail()
    gc.collect()
    tracemalloc.start()
    try:
        for note in notes:
            await trail.record(AccessRecord.of(note, principal, 200, observer="https://facade.example"))
        per_record = tracemalloc.get_traced_memory()[0] / len(notes)
    finally:
        tracemalloc.stop()
    event = (await trail.find(patient="Patient/9000000007"))[0]
    assert per_record < len(orjson.dumps(event)) / 2
    assert event["entity"][0]["what"]["reference"] == "Patient/9000000007"
