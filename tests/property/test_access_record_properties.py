"""An access kept as its record is the same audit as its event kept whole
(server/access/access_record.py): the same index fields, and an in-memory trail given
records answers every read and search exactly as one given the built events."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from server.access.access_record import AccessRecord
from server.access.audit_event import AuditNote
from server.access.audit_index import index_fields
from server.access.audit_trail import InMemoryAuditTrail
from server.access.principal import Principal
from server.access.scopes import ScopeSet
from tests.support.fhir_validation import validate_r4

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
ids = st.sampled_from(["9000000009", "9000000017", "123", "x.y-z"])
references = st.one_of(
    ids.map(lambda i: f"Patient/{i}"),
    ids.map(lambda i: f"https://x.example/fhir/Patient/{i}/_history/2"),
    ids.map(lambda i: f"MedicationRequest/{i}"),
    st.sampled_from(["Patient", "Patient/", "", "/", "AllergyIntolerance/a"]),
    texts,
)
notes = st.builds(
    AuditNote,
    request_id=st.uuids().map(str),
    method=st.sampled_from(["GET", "POST", "PUT"]),
    target=texts,
    client_address=st.none() | st.sampled_from(["127.0.0.1", "::1"]),
    interaction=st.sampled_from(["read", "vread", "search-type", "operation", "batch", "create", "other"]),
    resource_type=st.none() | st.sampled_from(["Patient", "AuditEvent"]),
    patients=st.lists(references, max_size=4),
    resources=st.lists(references, max_size=6),
    query=st.none() | st.binary(max_size=40),
    reason=st.none() | texts,
    withheld=st.integers(0, 3),
    operation=st.none() | st.sampled_from(["everything", "match"]),
)
principals = st.none() | st.builds(
    Principal,
    subject=texts,
    issuer=st.sampled_from(["https://issuer.example", "urn:dev"]),
    scopes=st.just(ScopeSet.parse("user/*.rs")),
    roles=st.frozensets(st.sampled_from(["clinician", "auditor", "clerk"]), max_size=2),
    client_id=st.none() | texts,
    role_codes=st.lists(st.sampled_from(["S0030:G0100:R0260", "R8000", "x"]), max_size=2).map(tuple),
    purpose=st.none() | st.sampled_from(["TREAT", "ETREAT"]),
    organisation_ods=st.none() | texts,
    sds_user_id=st.none() | texts,
)
instants = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(dt.timezone.utc)
)
records = st.builds(
    AccessRecord.of,
    notes,
    principals,
    st.sampled_from([200, 304, 400, 403, 404, 500, 503]),
    observer=st.just("https://facade.example"),
    break_glass=st.booleans(),
    now=instants,
)


@settings(max_examples=300, deadline=None)
@given(access=records)
def test_the_index_fields_of_a_record_are_those_of_its_event(access: AccessRecord) -> None:
    event = access.event()
    assert access.index_fields() == index_fields(event)
    assert event["id"] == access.event_id and access.event() == event  # the same event every time


@settings(max_examples=100, deadline=None)
@given(
    accesses=st.lists(records, max_size=8), patient=references, agent=texts, outcome=st.sampled_from(["0", "4", "8"])
)
def test_a_trail_of_records_answers_as_a_trail_of_events(
    accesses: list[AccessRecord], patient: str, agent: str, outcome: str
) -> None:
    async def run() -> None:
        of_records, of_events = InMemoryAuditTrail(), InMemoryAuditTrail()
        for access in accesses:
            await of_records.record(access)
            await of_events.append(access.event())
        searches: list[dict[str, Any]] = [
            {},
            {"patient": patient},
            {"agent": agent},
            {"outcome": outcome},
            {"types": ["read", "everything"]},
            {"recorded_from": dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)},
            {"limit": 3},
        ]
        for search in searches:
            assert await of_records.find(**search) == await of_events.find(**search), search
        for access in accesses:
            assert await of_records.get(access.event_id) == await of_events.get(access.event_id)

    asyncio.run(run())


def _note_with_every_field_set() -> AuditNote:
    """Each field given a value unlike its default, so a copy that leaves one out shows."""
    by_type: dict[str, Any] = {
        "str": "set",
        "str | None": "set",
        "list[str]": ["Patient/1"],
        "bytes | None": b"q",
        "int": 7,
    }
    return AuditNote(**{f.name: by_type[str(f.type)] for f in dataclasses.fields(AuditNote)})


def test_a_record_keeps_its_own_copy_of_every_field_of_the_note() -> None:
    note = _note_with_every_field_set()
    access = AccessRecord.of(note, None, 200, observer="https://facade.example")
    assert access.note == note
    note.saw(["Patient/2"], ["Patient/2"])  # the request's note changes afterwards
    note.withheld += 1
    assert access.note.patients == ["Patient/1"] and access.note.withheld == 7
    assert "Patient/2" not in str(access.event())
    validate_r4(access.event())


def test_the_recorded_instant_is_to_the_millisecond_as_the_event_says() -> None:
    now = dt.datetime(2026, 11, 30, 4, 30, 1, 123987, tzinfo=dt.timezone.utc)
    access = AccessRecord.of(_note_with_every_field_set(), None, 200, observer="o", now=now)
    assert access.event()["recorded"] == "2026-11-30T04:30:01.123+00:00"
    assert access.index_fields()["recorded"] == now.replace(microsecond=123000)
