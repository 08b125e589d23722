"""MedicationRequest search -> CPT calls (pure). What the search then keeps of CPT's
answer is the one local matcher's: tests/unit/test_local_matching.py."""

from __future__ import annotations

import pytest

from server.fhir.errors import BadRequest, InvalidSearchParameter
from server.fhir.search_request import SearchRequest, parse_search
from server.sources.cpt.provider import MedicationRequestFromCPT
from server.sources.cpt.query import ORDER_NUMBER_SYSTEM, CPTQuery, plan

NHS = "https://fhir.nhs.uk/Id/nhs-number"
DECL = MedicationRequestFromCPT.__new__(MedicationRequestFromCPT).declaration(20, 100)


def parsed(*pairs: tuple[str, str]) -> SearchRequest:
    return parse_search(list(pairs), DECL, strict=True)


@pytest.mark.parametrize(
    "pairs",
    [
        [("patient", "9000000009")],
        [("patient", "Patient/9000000009")],
        [("subject", "9000000009")],
        [("subject:Patient", "9000000009")],
        [("patient.identifier", f"{NHS}|9000000009")],
        [("patient:identifier", f"{NHS}|9000000009")],
        [("patient", "http://elsewhere.example/fhir/Patient/9000000009")],
    ],
)
def test_every_patient_form_names_the_nhs_number(pairs: list[tuple[str, str]]) -> None:
    assert plan(parsed(*pairs)) == CPTQuery(frozenset({"9000000009"}), ())


def test_or_values_union_and_params_intersect() -> None:
    assert plan(parsed(("patient", "9000000009,9000000017"))).nhs_numbers == {"9000000009", "9000000017"}
    both = parsed(("patient", "9000000009,9000000017"), ("subject", "9000000017"))
    assert plan(both).nhs_numbers == {"9000000017"}
    assert plan(parsed(("patient", "9000000009"), ("subject", "9000000017"))).nhs_numbers == frozenset()


@pytest.mark.parametrize(
    "pairs, message",
    [
        ([("patient", "9000000000")], "not a valid NHS number"),
        ([("patient.identifier", "https://other.example/id|9000000009")], "takes an NHS number"),
        ([("patient:missing", "true")], "not supported"),
    ],
)
def test_bad_patient_searches_are_400s(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(InvalidSearchParameter, match=message) as info:
        plan(parsed(*pairs))
    assert info.value.status == 400


def test_local_modifiers_are_left_to_the_matcher() -> None:
    # status:text and identifier:not were 400s here (this module's own modifier list); the
    # one matcher evaluates them, as on the PAS half (tests/unit/test_local_matching.py).
    # identifier:not names no prescription to fetch: CPT is asked by patient.
    assert plan(parsed(("status:text", "active"), ("patient", "9000000009"))) == CPTQuery(frozenset({"9000000009"}), ())
    assert plan(parsed(("identifier:not", f"{ORDER_NUMBER_SYSTEM}|X1"), ("patient", "9000000009"))) == CPTQuery(
        frozenset({"9000000009"}), ()
    )


def test_repeated_nhs_numbers_collapse_to_one_search() -> None:
    assert plan(parsed(("patient", ",".join(["9000000009"] * 11)))).nhs_numbers == {"9000000009"}


def test_too_many_distinct_nhs_numbers() -> None:
    numbers = [
        "9000000009",
        "9000000017",
        "9000000025",
        "9000000033",
        "9000000041",
        "9000000068",
        "9000000076",
        "9000000084",
        "9000000092",
        "9111231130",
        "9912003888",
    ]
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
