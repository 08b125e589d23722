"""What a search keeps of an NHS API's answer: the one local matcher
(server.fhir.search_match), run where it always runs (ResourceProvider.search), over
each NHS provider's own declarations.

These cases were the tests of three bespoke filters (allergy_gpc_query.matches,
cpt_query.matches, service_request_query.compile_filters), which are gone. Every case
is kept with its expected answer; where the old filters disagreed with FHIR R4 (and so
with each other), the case says what changed and why.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from server.fhir.errors import NotSupportedParameter
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchDeclaration, SearchRequest, parse_search
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult
from server.sources.cpt.provider import MedicationRequestFromCPT
from server.sources.gpconnect.provider import AllergyIntoleranceFromGPConnect
from server.sources.pds.provider import PatientFromPDS
from server.sources.referrals.provider import ServiceRequestFromReferrals

CTX = RequestContext(request_id="test", base_url="http://facade.test")
NHS = "https://fhir.nhs.uk/Id/nhs-number"
UBRN = "https://fhir.nhs.uk/Id/UBRN"
ORDER = "https://fhir.nhs.uk/Id/prescription-order-number"
ITEM = "https://fhir.nhs.uk/Id/prescription-order-item-number"


def parsed(provider: type[ResourceProvider], *pairs: tuple[str, str]) -> SearchRequest:
    declaration = SearchDeclaration(provider.resource_type, provider.search_params, provider.includes)
    return parse_search(list(pairs), declaration, strict=True)


async def kept(provider: type[ResourceProvider], resource: Resource, *pairs: tuple[str, str]) -> bool:
    """Whether a search with `pairs` keeps `resource` when the provider's source answers it."""

    class Answering(provider):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            pass

        async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
            return SearchResult(matches=[resource])

    result = await Answering().search(parsed(provider, *pairs), CTX)
    return [m is resource for m in result.matches] == [True]


# --- AllergyIntolerance (GP Connect) --------------------------------------------------------

ALLERGY: dict[str, Any] = {
    "resourceType": "AllergyIntolerance",
    "clinicalStatus": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]
    },
    "verificationStatus": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}
        ]
    },
    "category": ["food"],
    "criticality": "high",
    "recordedDate": "2015-06-01",
}


@pytest.mark.parametrize(
    "pair, expected",
    [
        (("category", "food"), True),
        (("category", "medication"), False),
        (("category", "http://hl7.org/fhir/allergy-intolerance-category|food"), True),
        (("category", "http://other|food"), False),
        (("category:not", "food"), False),
        (("criticality", "high"), True),
        (("verification-status", "confirmed"), True),
        (("verification-status", "refuted"), False),
        (("clinical-status", "active"), True),
        (("date", "2015"), True),
        (("date", "ge2016"), False),
        (("date:missing", "true"), False),
        (("category:missing", "false"), True),
    ],
)
async def test_allergy_parameters_filter_converted_allergies(pair: tuple[str, str], expected: bool) -> None:
    # patient is evaluated upstream (GP Connect answers for that one patient): the
    # allergy here carries none, and is still kept or dropped by the other parameter alone.
    assert await kept(AllergyIntoleranceFromGPConnect, ALLERGY, ("patient", "9000000009"), pair) is expected


async def test_allergy_text_modifier_is_evaluated_not_refused() -> None:
    # The GP Connect filter refused :text with a 400 while the PAS half of the same
    # searchset answered it; FHIR R4 defines :text on every token (CodeableConcept.text,
    # Coding.display), so the one matcher answers it for both halves.
    assert not await kept(
        AllergyIntoleranceFromGPConnect, ALLERGY, ("patient", "9000000009"), ("category:text", "food")
    )  # a bare code has no text to search
    displayed = {**ALLERGY, "clinicalStatus": {"coding": [{"code": "active", "display": "Active"}]}}
    assert await kept(
        AllergyIntoleranceFromGPConnect, displayed, ("patient", "9000000009"), ("clinical-status:text", "act")
    )


async def test_missing_is_about_the_element_not_its_codings() -> None:
    # The GP Connect filter called a CodeableConcept without codings missing; FHIR R4
    # :missing is about the element having a value, and text alone is a value.
    text_only = {**ALLERGY, "verificationStatus": {"text": "Confirmed by the GP"}}
    assert not await kept(
        AllergyIntoleranceFromGPConnect, text_only, ("patient", "9000000009"), ("verification-status:missing", "true")
    )
    assert await kept(
        AllergyIntoleranceFromGPConnect, text_only, ("patient", "9000000009"), ("verification-status:missing", "false")
    )


# --- MedicationRequest (CPT) ------------------------------------------------------------------


def mr(**over: Any) -> dict[str, Any]:
    base = {
        "resourceType": "MedicationRequest",
        "id": "x",
        "status": "active",
        "intent": "order",
        "authoredOn": "2026-03-10T09:30:00.000Z",
        "identifier": [{"system": ITEM, "value": "ITEM"}],
        "groupIdentifier": {"system": ORDER, "value": "RX"},
        "subject": {"reference": "Patient/9000000009", "identifier": {"system": NHS, "value": "9000000009"}},
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    "pairs, expected",
    [
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
        ([("identifier", f"{ITEM}|ITEM")], True),
        ([("identifier", "ITEM")], True),
        ([("identifier", f"{ORDER}|RX")], True),  # the order number is the item's groupIdentifier
        ([("identifier", f"{ORDER}|OTHER")], False),
        ([("patient", "9000000017")], False),  # an item CPT sent for another patient is never shown
    ],
)
async def test_medication_parameters_filter_cpt_line_items(pairs: list[tuple[str, str]], expected: bool) -> None:
    search = [("patient", "9000000009"), *pairs] if pairs[0][0] != "patient" else pairs
    assert await kept(MedicationRequestFromCPT, mr(), *search) is expected


async def test_undated_line_item_never_matches_a_date_filter() -> None:
    resource = mr()
    del resource["authoredOn"]
    assert not await kept(MedicationRequestFromCPT, resource, ("patient", "9000000009"), ("authoredon", "ge2000"))
    assert await kept(MedicationRequestFromCPT, resource, ("patient", "9000000009"), ("authoredon:missing", "true"))


async def test_medication_not_and_text_modifiers_are_evaluated_not_refused() -> None:
    # The CPT filter refused identifier:not and status:text with a 400 (its own modifier
    # list); the one matcher evaluates every FHIR R4 token modifier on both halves.
    assert await kept(MedicationRequestFromCPT, mr(), ("patient", "9000000009"), ("identifier:not", "x"))
    assert not await kept(MedicationRequestFromCPT, mr(), ("patient", "9000000009"), ("identifier:not", "ITEM"))
    assert not await kept(MedicationRequestFromCPT, mr(), ("patient", "9000000009"), ("status:text", "active"))


# --- ServiceRequest (BaRS and e-RS) -----------------------------------------------------------


def sr(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": "x",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/9000000009", "identifier": {"system": NHS, "value": "9000000009"}},
    }
    return {**base, **fields}


REFERRAL = {
    "coding": [{"system": "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest", "code": "referral"}]
}


@pytest.mark.parametrize(
    "pairs, resource, expected",
    [
        ([("status", "active")], sr(), True),
        ([("status", "completed,active")], sr(), True),
        ([("status", "completed")], sr(), False),
        ([("status:not", "completed")], sr(), True),
        ([("status", "http://hl7.org/fhir/request-status|active")], sr(), True),
        ([("status", "http://other|active")], sr(), False),
        ([("category", "referral")], sr(category=[REFERRAL]), True),
        (
            [("category", "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest|request")],
            sr(category=[REFERRAL]),
            False,
        ),
        ([("category:missing", "true")], sr(), True),
        ([("category:missing", "true")], sr(category=[REFERRAL]), False),
        ([("authored", "ge2024-01-01")], sr(authoredOn="2024-03-04T09:30:00+00:00"), True),
        ([("authored", "lt2024")], sr(authoredOn="2024-03-04T09:30:00+00:00"), False),
        ([("authored", "2024")], sr(), False),
        (
            [("occurrence", "2024-03-05")],
            sr(occurrencePeriod={"start": "2024-03-05T10:00:00+00:00", "end": "2024-03-05T10:20:00+00:00"}),
            True,
        ),
        ([("occurrence", "gt2030")], sr(occurrencePeriod={"start": "2024-03-05"}), True),  # open-ended
        ([("occurrence", "eq2023")], sr(occurrenceDateTime="2024-01-01"), False),
        ([("identifier", f"{UBRN}|000000070000")], sr(identifier=[{"system": UBRN, "value": "000000070000"}]), True),
        ([("identifier", f"{UBRN}|000000070001")], sr(identifier=[{"system": UBRN, "value": "000000070000"}]), False),
        ([("patient", "9000000017")], sr(), False),
        ([("patient", "9000000009")], sr(), True),
        ([("patient", "9000000009")], sr(subject={"reference": "urn:uuid:1"}), False),
    ],
)
async def test_service_request_parameters_filter_referrals(
    pairs: list[tuple[str, str]], resource: dict[str, Any], expected: bool
) -> None:
    assert await kept(ServiceRequestFromReferrals, resource, *pairs) is expected


async def test_an_open_period_is_ongoing_to_the_end_of_time() -> None:
    # The ServiceRequest filter ended an open Period at 9999-12-31T00:00, so a search
    # after the 30th of December 9999 missed an ongoing occurrence; FHIR R4 (search.html,
    # date) reads a Period without an end as ongoing: its upper bound is +infinity. Its
    # missing start is -infinity alike.
    ongoing = sr(occurrencePeriod={"start": "2024-03-05"})
    assert await kept(ServiceRequestFromReferrals, ongoing, ("occurrence", "gt9999-12-30"))
    assert await kept(ServiceRequestFromReferrals, ongoing, ("occurrence", "sa2024-03-04"))
    open_start = sr(occurrencePeriod={"end": "2024-03-05"})
    assert await kept(ServiceRequestFromReferrals, open_start, ("occurrence", "lt0002-01-01"))
    assert await kept(ServiceRequestFromReferrals, open_start, ("occurrence", "eb2024-03-06"))


async def test_a_period_bound_that_is_not_a_date_gives_no_range() -> None:
    # The ServiceRequest filter read a malformed bound as an open one (so matched almost
    # any date); the one matcher finds no range in such a Period: it says nothing about when.
    odd = sr(occurrencePeriod={"start": "2024-03-05", "end": "soon"})
    assert not await kept(ServiceRequestFromReferrals, odd, ("occurrence", "gt2030"))
    assert await kept(ServiceRequestFromReferrals, odd, ("occurrence:missing", "false"))  # present, though


async def test_service_request_text_modifier_is_evaluated_not_refused() -> None:
    # The ServiceRequest filter refused code:text with a 400; FHIR R4 :text searches the
    # CodeableConcept's text and its codings' displays, as the one matcher now does.
    cardiology = sr(code={"text": "Cardiology outpatients", "coding": [{"code": "x", "display": "Heart clinic"}]})
    assert await kept(ServiceRequestFromReferrals, cardiology, ("patient", "9000000009"), ("code:text", "cardio"))
    assert await kept(ServiceRequestFromReferrals, cardiology, ("patient", "9000000009"), ("code:text", "heart"))
    assert not await kept(ServiceRequestFromReferrals, sr(), ("patient", "9000000009"), ("code:text", "cardio"))


# --- the one place, for every provider -----------------------------------------------------------


async def test_upstream_evaluated_parameters_are_left_to_the_source() -> None:
    # PDS matches names its own way (fuzzy, history): the core never second-guesses it.
    patient = {"resourceType": "Patient", "id": "9000000009", "name": [{"family": "Smyth"}], "birthDate": "1980-01-01"}
    assert await kept(PatientFromPDS, patient, ("family", "Smith"), ("birthdate", "1990"))


class Declaring(ResourceProvider):
    resource_type: ClassVar[str] = "Observation"
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec("code", "token", "", path="code", modifiers=("below",), evaluated="local"),
        SearchParamSpec("status", "token", "", path="status"),
    )

    def __init__(self) -> None:
        self.asked: list[SearchRequest] = []

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        raise NotImplementedError

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        self.asked.append(request)
        return SearchResult(
            matches=[
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "urn:x", "code": "a"}]},
                }
            ]
        )


async def test_a_local_parameter_the_matcher_cannot_evaluate_is_a_400_before_the_source_is_asked() -> None:
    provider = Declaring()
    with pytest.raises(NotSupportedParameter, match="'code'"):
        await provider.search(parse_search([("code:below", "a")], provider.declaration(20, 100)), CTX)
    assert provider.asked == []
    found = await provider.search(
        parse_search([("code", "urn:x|a"), ("status", "other")], provider.declaration(20, 100)), CTX
    )
    assert len(found.matches) == 1  # code matched locally; status is the source's business


def test_a_local_parameter_without_a_path_fails_when_declared() -> None:
    with pytest.raises(ValueError, match="no element path"):
        SearchParamSpec("code", "token", "", evaluated="local")


@pytest.mark.parametrize("path", ["subject.", "code[x]", "identifier|", "value-quantity"])
def test_a_path_the_walker_cannot_read_fails_when_declared(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        SearchParamSpec("code", "token", "", path=path, evaluated="local")
