"""MedicationRequest search -> CPT calls and local filters (pure)."""
from __future__ import annotations

from typing import Any

import pytest

from server.fhir.errors import BadRequest, InvalidSearchParameter
from server.fhir.search_request import SearchRequest, parse_search
from server.providers.cpt_query import ORDER_NUMBER_SYSTEM, CPTQuery, matches, plan
from server.providers.medication_request_cpt import MedicationRequestFromCPT

NHS = "https://fhir.nhs.uk/Id/nhs-number"
DECL = MedicationRequestFromCPT.__new__(MedicationRequestFromCPT).declaration(20, 100)


def parsed(*pairs: tuple[str, str]) -> SearchRequest:
    return parse_search(list(pairs), DECL, strict=True)


@pytest.mark.parametrize("pairs", [
    [("patient", "9000000009")],
    [("patient", "Patient/9000000009")],
    [("subject", "9000000009")],
    [("subject:Patient", "9000000009")],
    [("patient.identifier", f"{NHS}|9000000009")],
    [("patient:identifier", f"{NHS}|9000000009")],
    [("patient", "http://elsewhere.example/fhir/Patient/9000000009")],
])
def test_every_patient_form_names_the_nhs_number(pairs: list[tuple[str, str]]) -> None:
    assert plan(parsed(*pairs)) == CPTQuery(frozenset({"9000000009"}), ())


def test_or_values_union_and_params_intersect() -> None:
    assert plan(parsed(("patient", "9000000009,9000000017"))).nhs_numbers == {"9000000009", "9000000017"}
    both = parsed(("patient", "9000000009,9000000017"), ("subject", "9000000017"))
    assert plan(both).nhs_numbers == {"9000000017"}
    assert plan(parsed(("patient", "9000000009"), ("subject", "9000000017"))).nhs_numbers == frozenset()


@pytest.mark.parametrize("pairs, message", [
    ([("patient", "9000000000")], "not a valid NHS number"),
    ([("patient.identifier", "https://other.example/id|9000000009")], "takes an NHS number"),
    ([("patient:missing", "true")], "not supported"),
    ([("status:text", "active"), ("patient", "9000000009")], "not supported"),
    ([("identifier:not", "x"), ("patient", "9000000009")], "not supported"),
])
def test_bad_patient_searches_are_400s(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(InvalidSearchParameter, match=message) as info:
        plan(parsed(*pairs))
    assert info.value.status == 400


def test_repeated_nhs_numbers_collapse_to_one_search() -> None:
    assert plan(parsed(("patient", ",".join(["9000000009"] * 11)))).nhs_numbers == {"9000000009"}


def test_too_many_distinct_nhs_numbers() -> None:
    numbers = ["9000000009", "9000000017", "9000000025", "9000000033", "9000000041", "9000000068", "9000000076",
               "9000000084", "9000000092", "9111231130", "9912003888"]
    with pytest.raises(InvalidSearchParameter, match="At most 10"):
        plan(parsed(("patient", ",".join(numbers))))


def test_no_patient_and_no_prescription_is_explained() -> None:
    with pytest.raises(BadRequest, match="finds prescriptions by patient"):
        plan(parsed(("status", "active")))
    with pytest.raises(BadRequest, match="finds prescriptions by patient"):
        plan(parsed(("identifier", "https://fhir.nhs.uk/Id/prescription-order-item-number|X")))


def test_prescription_order_number_is_fetched_directly() -> None:
    q = plan(parsed(("identifier", f"{ORDER_NUMBER_SYSTEM}|A1F3C2-A83008-4B7E1K")))
    assert q == CPTQuery(None, ("A1F3C2-A83008-4B7E1K",))
    q = plan(parsed(("identifier", f"{ORDER_NUMBER_SYSTEM}|X1"), ("patient", "9000000009")))
    assert q == CPTQuery(frozenset({"9000000009"}), ("X1",))


def mr(**over: Any) -> dict[str, Any]:
    base = {"resourceType": "MedicationRequest", "id": "x", "status": "active", "intent": "order",
            "authoredOn": "2026-03-10T09:30:00.000Z",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/prescription-order-item-number", "value": "ITEM"}],
            "groupIdentifier": {"system": ORDER_NUMBER_SYSTEM, "value": "RX"},
            "subject": {"reference": "Patient/9000000009", "identifier": {"system": NHS, "value": "9000000009"}}}
    base.update(over)
    return base


@pytest.mark.parametrize("pairs, expected", [
    ([("status", "active")], True),
    ([("status", "completed,active")], True),
    ([("status", "completed")], False),
    ([("status:not", "completed")], True),
    ([("status:not", "active")], False),
    ([("status", "http://hl7.org/fhir/CodeSystem/medicationrequest-status|active")], True),
    ([("status", "http://other|active")], False),
    ([("intent", "order")], True),
    ([("intent", "reflex-order")], False),
    ([("authoredon", "2026-03")], True),
    ([("authoredon", "ge2026-03-11")], False),
    ([("authoredon", "lt2026-03-11"), ("authoredon", "gt2026-03-09")], True),
    ([("authoredon", "ne2026-03-10")], False),
    ([("authoredon:missing", "false")], True),
    ([("identifier", "https://fhir.nhs.uk/Id/prescription-order-item-number|ITEM")], True),
    ([("identifier", "ITEM")], True),
    ([("identifier", f"{ORDER_NUMBER_SYSTEM}|RX")], True),
    ([("identifier", f"{ORDER_NUMBER_SYSTEM}|OTHER")], False),
    ([("patient", "9000000017")], False),
])
def test_local_filters(pairs: list[tuple[str, str]], expected: bool) -> None:
    request = parsed(("patient", "9000000009"), *pairs) if pairs[0][0] != "patient" else parsed(*pairs)
    assert matches(mr(), request) is expected


def test_undated_item_never_matches_a_date_filter() -> None:
    resource = mr()
    del resource["authoredOn"]
    assert not matches(resource, parsed(("patient", "9000000009"), ("authoredon", "ge2000")))
    assert matches(resource, parsed(("patient", "9000000009"), ("authoredon:missing", "true")))
