"""A patient reference search parameter -> validated NHS numbers (the one reading every
NHS-backed provider shares), and the 400s for everything else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from server.fhir.errors import BadRequest, InvalidSearchParameter
from server.fhir.search_params import ParsedParam, SearchParamSpec, parse_param
from server.fhir.search_request import SearchDeclaration, parse_search
from server.nhs.nhs_number import check_digit, is_valid_nhs_number
from server.providers.patient_reference import check_nhs_number, nhs_numbers
from server.sources.cpt.provider import MedicationRequestFromCPT
from server.sources.cpt.query import plan
from server.sources.gpconnect.provider import AllergyIntoleranceFromGPConnect
from server.sources.gpconnect.query import gpconnect_query
from server.sources.referrals.provider import ServiceRequestFromReferrals
from server.sources.referrals.query import plan_search

NHS = "https://fhir.nhs.uk/Id/nhs-number"
PATIENT = SearchParamSpec("patient", "reference", "the patient", target_types=("Patient",))

# (modifier, chain, how the number is written): every form a client may name a patient in.
FORMS: list[tuple[str | None, str | None, Callable[[str], str]]] = [
    (None, None, lambda n: n),
    (None, None, lambda n: f"Patient/{n}"),
    (None, None, lambda n: f"https://elsewhere.example/fhir/Patient/{n}"),
    ("Patient", None, lambda n: n),
    ("identifier", None, lambda n: f"{NHS}|{n}"),
    ("identifier", None, lambda n: n),
    (None, "identifier", lambda n: f"{NHS}|{n}"),
]


def param(modifier: str | None, raw: str, chain: str | None = None) -> ParsedParam:
    return parse_param(PATIENT, modifier, raw, chain)


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    first = draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    check = check_digit(first)
    assume(check is not None)
    return first + str(check)


# Strings the FHIR id grammar lets through to the provider but that are not NHS numbers.
invalid_numbers = st.from_regex(r"\A[A-Za-z0-9\-.]{1,30}\Z").filter(lambda s: not is_valid_nhs_number(s))


@settings(max_examples=40, deadline=None)
@given(valid_numbers(), st.sampled_from(FORMS))
def test_a_valid_number_is_read_from_every_form(number: str, form: tuple) -> None:
    modifier, chain, write = form
    assert nhs_numbers(param(modifier, write(number), chain)) == {number}


@settings(max_examples=60, deadline=None)
@given(invalid_numbers, st.sampled_from(FORMS))
def test_any_invalid_number_is_a_400_naming_the_parameter(number: str, form: tuple) -> None:
    modifier, chain, write = form
    parsed = param(modifier, write(number), chain)
    with pytest.raises(InvalidSearchParameter) as err:
        nhs_numbers(parsed)
    assert err.value.status == 400
    assert err.value.diagnostics.startswith("Parameter 'patient")
    assert "Modulus-11" in err.value.diagnostics
    assert err.value.details["coding"][0]["code"] == "INVALID_RESOURCE_ID"


@settings(max_examples=30, deadline=None)
@given(st.lists(valid_numbers(), min_size=1, max_size=4), invalid_numbers)
def test_comma_values_are_or_and_one_invalid_value_spoils_the_parameter(numbers: list[str], bad: str) -> None:
    assert nhs_numbers(param(None, ",".join(numbers))) == set(numbers)
    with pytest.raises(InvalidSearchParameter, match="Modulus-11"):
        nhs_numbers(param(None, ",".join([*numbers, bad])))


@pytest.mark.parametrize(
    "modifier, raw, chain, says",
    [
        ("missing", "true", None, "'patient:missing' is not supported"),
        ("identifier", "https://example.org/mrn|9000000009", None, "takes an NHS number"),
        ("identifier", "|9000000009", None, "takes an NHS number"),  # explicitly no system: not an NHS number
        ("identifier", f"{NHS}|", None, "needs an NHS number"),
        (None, "https://example.org/mrn|9000000009", "identifier", "'patient:identifier' takes an NHS number"),
    ],
)
def test_other_shapes_are_400s_saying_what_is_wanted(
    modifier: str | None, raw: str, chain: str | None, says: str
) -> None:
    with pytest.raises(InvalidSearchParameter, match=says):
        nhs_numbers(param(modifier, raw, chain))


def test_another_resource_type_is_refused() -> None:
    # The parser already refuses Group/1 for a Patient-only parameter; a spec that allows
    # more types still gets no NHS number out of it.
    wide = SearchParamSpec("subject", "reference", "", target_types=("Patient", "Group"))
    with pytest.raises(InvalidSearchParameter, match="must refer to a Patient"):
        nhs_numbers(parse_param(wide, None, "Group/9000000009"))


def test_a_read_id_gets_the_same_check_without_a_parameter_name() -> None:
    assert check_nhs_number("9000000009") == "9000000009"
    with pytest.raises(BadRequest) as err:
        check_nhs_number("9000000000")
    assert not isinstance(err.value, InvalidSearchParameter)
    assert err.value.diagnostics == "'9000000000' is not a valid NHS number (Modulus-11 check failed)"
    assert err.value.details["coding"][0]["code"] == "INVALID_RESOURCE_ID"


# ---- every provider that takes a patient answers an invalid number the same way ----------


def _declaration(provider: type) -> SearchDeclaration:
    return SearchDeclaration(provider.resource_type, provider.search_params, provider.includes)


PLANNERS = {
    "MedicationRequest": (lambda r: plan(r), _declaration(MedicationRequestFromCPT)),
    "ServiceRequest": (lambda r: plan_search(r), _declaration(ServiceRequestFromReferrals)),
    "AllergyIntolerance": (lambda r: gpconnect_query(r), _declaration(AllergyIntoleranceFromGPConnect)),
}


@pytest.mark.parametrize("resource_type", sorted(PLANNERS))
@pytest.mark.parametrize(
    "pair",
    [("patient", "9000000000"), ("patient:identifier", f"{NHS}|9000000001"), ("patient.identifier", f"{NHS}|123")],
)
def test_each_provider_refuses_an_invalid_number_with_one_code(resource_type: str, pair: tuple[str, str]) -> None:
    planner, declaration = PLANNERS[resource_type]
    with pytest.raises(InvalidSearchParameter) as err:
        planner(parse_search([pair], declaration))
    assert "Modulus-11" in err.value.diagnostics
    assert err.value.details["coding"][0]["code"] == "INVALID_RESOURCE_ID"
