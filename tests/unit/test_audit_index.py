"""index_fields: the flat fields every audit store searches on, derived from one event."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.access.audit_index import index_fields, parse_recorded, patient_reference
from tests.support.audit_events import BASE_TIME, audit_event


def test_a_balp_read_event() -> None:
    event = audit_event(
        patients=["9000000009"],
        others=["MedicationRequest/abc"],
        user="555254242106",
        client="clinic-app",
        subtype="read",
        query="cGF0aWVudD05MDAwMDAwMDA5",
    )
    assert index_fields(event) == {
        "patients": ["Patient/9000000009"],
        "agents": ["555254242106", "clinic-app"],
        "recorded": BASE_TIME,
        "outcome": "0",
        "types": ["rest", "read"],
        "action": "R",
    }


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("Patient/9000000009", "Patient/9000000009"),
        ("https://facade.example/fhir/Patient/9000000009", "Patient/9000000009"),
        ("Patient/9000000009/_history/3", "Patient/9000000009"),
        ("MedicationRequest/abc", None),
        ("Patient", None),
        ("#contained", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_patient_references(reference: Any, expected: str | None) -> None:
    assert patient_reference(reference) == expected


def test_several_patients_each_once_and_other_entities_ignored() -> None:
    event = audit_event(
        patients=["9000000009", "9000000017", "9000000009"],
        others=["Patient/9000000025/_history/1", "AllergyIntolerance/x"],
    )
    assert index_fields(event)["patients"] == ["Patient/9000000009", "Patient/9000000017", "Patient/9000000025"]


def test_agents_hold_identifier_values_references_and_reference_ids() -> None:
    event = audit_event()
    event["agent"].append({"who": {"reference": "Practitioner/p1"}})
    event["agent"].append({"who": {"display": "no identity"}})
    event["agent"].append("not an agent")
    assert index_fields(event)["agents"] == ["555254242106", "clinic-app", "Practitioner/p1", "p1"]


def test_types_are_type_then_subtypes() -> None:
    event = audit_event(subtype="search-type")
    event["subtype"].append({"system": "x", "code": "history-type"})
    assert index_fields(event)["types"] == ["rest", "search-type", "history-type"]


@pytest.mark.parametrize(
    "text, instant",
    [
        ("2026-11-29T19:00:00.123+00:00", BASE_TIME),
        ("2026-11-29T19:00:00.123Z", BASE_TIME),
        ("2026-11-29T20:00:00.123+01:00", BASE_TIME),
        ("2026-11-29T19:00:00+00:00", BASE_TIME.replace(microsecond=0)),
    ],
)
def test_recorded_is_an_aware_instant(text: str, instant: datetime) -> None:
    parsed = parse_recorded(text)
    assert parsed == instant and parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["2026-11-29", "2026-11-29T19:00:00", "yesterday", "", None, 1764442800])
def test_recorded_that_is_no_instant_is_refused(text: Any) -> None:
    with pytest.raises(ValueError):
        index_fields({**audit_event(), "recorded": text})


def test_missing_optional_parts_give_empty_fields() -> None:
    event = {"resourceType": "AuditEvent", "id": "x", "recorded": "2026-11-29T19:00:00Z"}
    assert index_fields(event) == {
        "patients": [],
        "agents": [],
        "recorded": BASE_TIME.replace(microsecond=0),
        "outcome": None,
        "types": [],
        "action": None,
    }


# --- properties ---------------------------------------------------------------------------

ids = st.from_regex(r"[A-Za-z0-9\-.]{1,20}", fullmatch=True)
codes = st.from_regex(r"[a-z][a-z\-]{0,15}", fullmatch=True)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.builds(
    lambda dt, tz: dt.replace(tzinfo=timezone.utc).astimezone(tz),
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30)),
    offsets,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@given(
    patients=st.lists(ids, max_size=5),
    others=st.lists(st.tuples(st.sampled_from(["Observation", "Device"]), ids), max_size=3),
    users=st.lists(ids, min_size=1, max_size=3),
    subtypes=st.lists(codes, max_size=3),
    when=instants,
    outcome=st.sampled_from(["0", "4", "8", "12"]),
    action=st.sampled_from(["C", "R", "U", "D", "E"]),
)
def test_fields_follow_the_event(
    patients: list[str],
    others: list[tuple[str, str]],
    users: list[str],
    subtypes: list[str],
    when: datetime,
    outcome: str,
    action: str,
) -> None:
    event = audit_event(
        patients=patients, others=[f"{t}/{i}" for t, i in others], recorded=when, outcome=outcome, action=action
    )
    event["agent"] = [{"who": {"identifier": {"system": "s", "value": u}}} for u in users]
    event["subtype"] = [{"system": "s", "code": c} for c in subtypes]
    fields = index_fields(event)
    assert fields["patients"] == list(dict.fromkeys(f"Patient/{p}" for p in patients))
    assert fields["agents"] == list(dict.fromkeys(users))
    assert fields["types"] == list(dict.fromkeys(["rest", *subtypes]))
    assert fields["recorded"] == when.replace(microsecond=when.microsecond // 1000 * 1000)
    assert fields["recorded"].utcoffset() is not None
    assert (fields["outcome"], fields["action"]) == (outcome, action)
    # A function of the content only: the same event after a JSON round trip (a spool) indexes the same.
    assert index_fields(orjson.loads(orjson.dumps(event))) == fields


@given(
    entity=st.lists(json_values, max_size=4),
    agent=st.lists(json_values, max_size=4),
    subtype=st.lists(json_values, max_size=3),
    type_=json_values,
)
def test_odd_shapes_never_crash_and_give_only_strings(
    entity: list[Any], agent: list[Any], subtype: list[Any], type_: Any
) -> None:
    event = {
        "resourceType": "AuditEvent",
        "id": "x",
        "recorded": "2026-11-29T19:00:00Z",
        "entity": entity,
        "agent": agent,
        "subtype": subtype,
        "type": type_,
    }
    fields = index_fields(event)
    for name in ("patients", "agents", "types"):
        assert all(isinstance(v, str) for v in fields[name])
        assert len(fields[name]) == len(set(fields[name]))
    assert all(v.startswith("Patient/") for v in fields["patients"])
