"""Unit tests: AllergyIntolerance search -> GP Connect query. What the search then keeps
of GP Connect's answer is the one local matcher's: tests/unit/test_local_matching.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_request import SearchRequest, parse_search
from server.nhs.nhs_number import is_valid_nhs_number
from server.sources.gpconnect.provider import AllergyIntoleranceFromGPConnect
from server.sources.gpconnect.query import gpconnect_query

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


def search(*pairs: tuple[str, str]) -> SearchRequest:
    return parse_search(
        list(pairs),
        AllergyIntoleranceFromGPConnect.declaration(
            AllergyIntoleranceFromGPConnect.__new__(AllergyIntoleranceFromGPConnect), 20, 100
        ),
    )


@pytest.mark.parametrize(
    "pair",
    [
        ("patient", "9000000009"),
        ("patient", "Patient/9000000009"),
        ("patient", "https://facade.example/fhir/Patient/9000000009"),
        ("patient:Patient", "9000000009"),
        ("patient:identifier", f"{NHS_SYSTEM}|9000000009"),
        ("patient.identifier", f"{NHS_SYSTEM}|9000000009"),
        ("patient:identifier", "9000000009"),
    ],
)
def test_every_patient_form_names_the_nhs_number(pair: tuple[str, str]) -> None:
    query = gpconnect_query(search(pair))
    assert (query.nhs_number, query.include_resolved, query.can_match) == ("9000000009", False, True)


@pytest.mark.parametrize(
    "pairs, message",
    [
        ((), "needs patient"),
        ((("patient", "9000000000"),), "Modulus-11"),
        ((("patient", "abc"),), "Modulus-11"),
        ((("patient", "9000000009,9000000017"),), "exactly one"),
        ((("patient", "9000000009"), ("patient", "9000000017")), "exactly one"),
        ((("patient:identifier", "http://other|9000000009"),), "nhs-number"),
        ((("patient:missing", "true"),), "not supported"),
        # ("category:text", "food") was a 400 here: :text is now evaluated by the one matcher,
        # as on the PAS half (tests/unit/test_local_matching.py says why).
    ],
)
def test_bad_patient_searches_are_400(pairs: tuple[tuple[str, str], ...], message: str) -> None:
    with pytest.raises(InvalidSearchParameter, match=message):
        gpconnect_query(search(*pairs))


@pytest.mark.parametrize(
    "status, resolved, can_match",
    [
        ("active", False, True),
        ("resolved", True, True),
        ("inactive", True, True),
        ("active,resolved", True, True),
        ("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical|resolved", True, True),
        ("http://other|resolved", False, False),
        ("unknown", False, False),
    ],
)
def test_clinical_status_decides_the_resolved_switch(status: str, resolved: bool, can_match: bool) -> None:
    query = gpconnect_query(search(("patient", "9000000009"), ("clinical-status", status)))
    assert (query.include_resolved, query.can_match) == (resolved, can_match)


def test_not_and_missing_modifiers_on_clinical_status() -> None:
    assert gpconnect_query(search(("patient", "9000000009"), ("clinical-status:not", "active"))).include_resolved
    assert not gpconnect_query(
        search(("patient", "9000000009"), ("clinical-status:not", "resolved,inactive"))
    ).include_resolved
    assert gpconnect_query(search(("patient", "9000000009"), ("clinical-status:missing", "true"))).include_resolved


def test_text_on_clinical_status_asks_for_every_status() -> None:
    # A display may name any status: GP Connect is asked for a superset, the matcher decides.
    query = gpconnect_query(search(("patient", "9000000009"), ("clinical-status:text", "resolved")))
    assert (query.include_resolved, query.can_match) == (True, True)
    assert gpconnect_query(search(("patient", "9000000009"), ("category:text", "food"))).can_match


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_only_modulus_11_valid_numbers_pass(number: str) -> None:
    request = search(("patient", number))
    if is_valid_nhs_number(number):
        assert gpconnect_query(request).nhs_number == number
    else:
        with pytest.raises(InvalidSearchParameter):
            gpconnect_query(request)
