"""Façade-issued MedicationRequest ids: readable, valid FHIR ids, decodable to the prescription."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.fhir.ids import is_fhir_id
from server.sources.cpt.ids import (
    PrescriptionKey,
    UnissuableId,
    medication_request_id,
    parse_medication_request_id,
)

GUID = "BB05DF81-0147-494D-9009-753C0BAE8D91"


def test_acute_id_is_readable() -> None:
    rid = medication_request_id("622F04-A83008-A691D5", None, GUID)
    assert rid == f"622F04-A83008-A691D5.{GUID}"
    assert parse_medication_request_id(rid) == PrescriptionKey("622F04-A83008-A691D5", None)


def test_plus_check_character_and_issue_round_trip() -> None:
    rid = medication_request_id("B7C21D-A83008-9D44E+", 2, GUID)
    assert rid == f"B7C21D-A83008-9D44Ep.2.{GUID}"
    assert is_fhir_id(rid)
    assert parse_medication_request_id(rid) == PrescriptionKey("B7C21D-A83008-9D44E+", 2)


def test_unusual_prescription_id_is_base32_encoded() -> None:
    rid = medication_request_id("abc/def", None, "item")
    assert rid.startswith("x") and is_fhir_id(rid)
    assert parse_medication_request_id(rid) == PrescriptionKey("abc/def", None)


def test_item_with_dots_is_hashed() -> None:
    rid = medication_request_id("622F04-A83008-A691D5", None, "1.2.3")
    assert rid.split(".")[-1].startswith("h") and len(rid.split(".")) == 2


@pytest.mark.parametrize(
    "rid",
    [
        "9000000009",  # one part: not ours
        "622F04-A83008-A691D5.01.X",  # non-canonical issue
        "622F04-A83008-A691D5.a.X",  # issue not a number
        "a.b.c.d",
        "622F04-A83008-A691D5.",  # empty item part
        "xZZZ.item",  # not base32 (upper case)
        "x8.item",  # not base32 alphabet
        "622f04.item",  # lowercase: never an encoded EPS id
    ],
)
def test_ids_we_never_issue_do_not_parse(rid: str) -> None:
    assert parse_medication_request_id(rid) is None


def test_overlong_prescription_id_cannot_be_issued() -> None:
    with pytest.raises(UnissuableId):
        medication_request_id("A" * 70, None, GUID)


@settings(max_examples=100, deadline=None)
@given(
    prescription_id=st.one_of(
        st.from_regex(r"\A[0-9A-F]{6}-[0-9A-Z]{6}-[0-9A-F]{5}[0-9A-Z+]\Z"),
        st.text(min_size=1, max_size=25),
    ),
    issue=st.one_of(st.none(), st.integers(min_value=1, max_value=99)),
    item=st.one_of(st.uuids().map(lambda u: str(u).upper()), st.text(min_size=1, max_size=80)),
)
def test_every_issued_id_is_a_fhir_id_that_decodes(prescription_id: str, issue: int | None, item: str) -> None:
    try:
        rid = medication_request_id(prescription_id, issue, item)
    except UnissuableId:
        assert len(prescription_id.encode()) > 25  # only very long non-EPS ids are refused
        return
    assert is_fhir_id(rid)
    assert parse_medication_request_id(rid) == PrescriptionKey(prescription_id, issue)
    assert medication_request_id(prescription_id, issue, item) == rid  # stable
