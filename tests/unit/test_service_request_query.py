"""ServiceRequest search routing (pure). What the search then keeps of the routed API's
answer is the one local matcher's: tests/unit/test_local_matching.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_request import SearchDeclaration, SearchRequest, parse_search
from server.sources.referrals.provider import ServiceRequestFromReferrals
from server.sources.referrals.query import ByPatient, ByUbrn, plan_search

NHS = "https://fhir.nhs.uk/Id/nhs-number"
UBRN = "https://fhir.nhs.uk/Id/UBRN"
DECL = SearchDeclaration(
    "ServiceRequest", ServiceRequestFromReferrals.search_params, ServiceRequestFromReferrals.includes
)


def parse(*pairs: tuple[str, str]) -> SearchRequest:
    return parse_search(list(pairs), DECL)


@pytest.mark.parametrize(
    "pairs",
    [
        [("patient", "9000000009")],
        [("patient", "Patient/9000000009")],
        [("patient:Patient", "9000000009")],
        [("patient:identifier", f"{NHS}|9000000009")],
        [("patient.identifier", f"{NHS}|9000000009")],
        [("patient:identifier", "9000000009")],
        [("subject", "9000000009")],
        [("subject:identifier", f"{NHS}|9000000009")],
        [("patient", "9000000009"), ("subject", "Patient/9000000009")],
    ],
)
def test_every_patient_form_goes_to_bars(pairs: list[tuple[str, str]]) -> None:
    assert plan_search(parse(*pairs)) == ByPatient(("9000000009",))


def test_or_values_ask_for_each_patient_and_and_values_intersect() -> None:
    assert plan_search(parse(("patient", "9000000009,9000000017"))) == ByPatient(("9000000009", "9000000017"))
    assert plan_search(parse(("patient", "9000000009,9000000017"), ("subject", "9000000017"))) == ByPatient(
        ("9000000017",)
    )
    assert plan_search(parse(("patient", "9000000009"), ("subject", "9000000017"))) == ByPatient(())


@pytest.mark.parametrize(
    "pairs, message",
    [
        ([("patient", "9000000000")], "not a valid NHS number"),
        ([("patient", "123")], "not a valid NHS number"),
        ([("patient:identifier", "https://example.org/mrn|9000000009")], "takes an NHS number"),
        ([("patient:missing", "true")], "not supported"),
        ([("identifier", f"{UBRN}|12345")], "twelve digits"),
        ([("identifier", f"{UBRN}|")], "twelve digits"),
        ([("status", "active")], "needs a patient"),
        ([], "needs a patient"),
        ([("identifier", "https://example.org/other|1")], "needs a patient"),
    ],
)
def test_searches_that_cannot_be_routed_are_400s_naming_the_problem(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(InvalidSearchParameter) as err:
        plan_search(parse(*pairs))
    assert message in err.value.diagnostics


def test_subject_of_another_type_is_rejected_by_the_parser() -> None:
    with pytest.raises(InvalidSearchParameter):
        parse(("subject", "Group/1"))


def test_ubrns_go_to_ers_even_with_a_patient() -> None:
    assert plan_search(parse(("identifier", f"{UBRN}|000000070000"))) == ByUbrn(("000000070000",))
    assert plan_search(parse(("identifier", "000000070000"))) == ByUbrn(("000000070000",))
    assert plan_search(
        parse(("identifier", f"{UBRN}|000000070000,{UBRN}|000000070001"), ("patient", "9000000009"))
    ) == ByUbrn(("000000070000", "000000070001"))
    # an OR with a non-UBRN identifier cannot be answered by e-RS: the patient routes it
    assert plan_search(
        parse(("identifier", f"{UBRN}|000000070000,https://x|1"), ("patient", "9000000009"))
    ) == ByPatient(("9000000009",))


@settings(max_examples=60, deadline=None)
@given(st.from_regex(r"\A[0-9]{10}\Z"))
def test_any_ten_digits_route_only_when_modulus_11_holds(number: str) -> None:
    from server.nhs.nhs_number import is_valid_nhs_number

    request = parse(("patient", number))
    if is_valid_nhs_number(number):
        assert plan_search(request) == ByPatient((number,))
    else:
        with pytest.raises(InvalidSearchParameter):
            plan_search(request)
