"""The AllergyIntolerance/MedicationRequest composite over an NHS provider (a fake inner
provider here: this is a unit test of the composite alone) and the dedup rule."""

from __future__ import annotations

from typing import ClassVar

import pytest

from mappings.spec import load_profile
from server.fhir.errors import NotSupportedParameter, ServiceUnavailable
from server.fhir.search_params import ParsedParam, ReferenceValue, SearchParamSpec
from server.fhir.search_request import SearchDeclaration, SearchRequest, parse_search
from server.pas.dedup import same_record, without_duplicates
from server.pas.records import PASMappings
from server.pas.service import PASService
from server.pas.store import InMemoryPASStore, PatientData, StoreUnavailable
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult
from server.providers.pas_clinical import ClinicalWithPAS
from server.providers.registry import ProviderRegistry

CTX = RequestContext(request_id="r", base_url="http://x")
SNOMED = "http://snomed.info/sct"


def allergy(code: str, source: str | None = None) -> Resource:
    out: Resource = {
        "resourceType": "AllergyIntolerance",
        "id": f"nhs-{code}",
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "patient": {"reference": "Patient/9000000009"},
    }
    if source:
        out["meta"] = {"source": source}
    return out


class NHSAllergies(ResourceProvider):
    resource_type: ClassVar[str] = "AllergyIntolerance"
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec("patient", "reference", "NHS number", target_types=("Patient",)),
    )

    def __init__(self) -> None:
        self.seen: list[SearchRequest] = []

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        return allergy("91936005")

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        self.seen.append(request)
        return SearchResult(matches=[allergy("91936005"), allergy("227493005", source="urn:gp")])


async def composite() -> tuple[ClinicalWithPAS, NHSAllergies]:
    store = InMemoryPASStore()
    await store.create(
        PatientData(
            {"hospitalNumber": "H1", "nhsNumber": "9000000009"},
            allergies=(
                {"allergyId": "A1", "substanceCode": "91936005", "substanceText": "Penicillin", "status": "A"},
                {"allergyId": "A2", "substanceCode": "300913006", "substanceText": "Shellfish", "status": "A"},
            ),
        )
    )
    service = PASService(PASMappings(load_profile("pas/reference_pas")), store, ProviderRegistry())
    inner = NHSAllergies()
    return ClinicalWithPAS("AllergyIntolerance", inner, service), inner


def by_patient(ref: str) -> SearchRequest:
    rtype, _, rid = ref.partition("/")
    return SearchRequest("AllergyIntolerance", params=(ParsedParam("patient", None, (ReferenceValue(rtype, rid),)),))


async def test_pas_id_searches_nhs_by_the_traced_number_and_drops_duplicates() -> None:
    provider, inner = await composite()
    result = await provider.search(by_patient("Patient/pas-H1"), CTX)
    asked = inner.seen[0].params[0].values[0]
    assert (asked.resource_type, asked.id) == ("Patient", "9000000009")
    assert [(r["id"], r["meta"]["source"]) for r in result.matches] == [
        ("nhs-91936005", "urn:nhs-fhir-facade:nhs"),
        ("nhs-227493005", "urn:gp"),
        ("pas-H1-A2", "urn:nhs-fhir-facade:pas:reference-pas"),
    ]  # A1 is the NHS penicillin record again


async def test_nhs_number_search_adds_that_patients_pas_records() -> None:
    provider, _ = await composite()
    result = await provider.search(by_patient("Patient/9000000009"), CTX)
    assert [r["id"] for r in result.matches] == ["nhs-91936005", "nhs-227493005", "pas-H1-A2"]


async def test_inner_resources_are_not_mutated() -> None:
    provider, _ = await composite()
    original = allergy("1")
    tagged = provider._tagged(original)
    assert "meta" not in original and tagged["meta"]["source"] == "urn:nhs-fhir-facade:nhs"


def test_medication_dedup_needs_the_same_start_when_both_have_one() -> None:
    def med(start: str | None, field: str = "bounds") -> Resource:
        out: Resource = {
            "resourceType": "MedicationRequest",
            "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": "1"}]},
        }
        if start and field == "bounds":
            out["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": {"start": start}}}}]
        elif start:
            out["authoredOn"] = start + "T10:00:00Z"
        return out

    assert same_record(med("2026-01-01", "authored"), med("2026-01-01"))
    assert not same_record(med("2026-02-01", "authored"), med("2026-01-01"))
    assert same_record(med(None), med("2026-01-01"))
    assert not same_record(allergy("1"), med(None))
    assert without_duplicates([allergy("1")], [allergy("1"), allergy("2")]) == [allergy("2")]


# --- the other search parameters, applied to PAS records -------------------------------------

CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"


class DeclaringNHSAllergies(NHSAllergies):
    """The GP Connect provider's declarations (paths included), answering with nothing."""

    search_params = (
        SearchParamSpec("patient", "reference", "NHS number", path="patient", target_types=("Patient",)),
        SearchParamSpec("clinical-status", "token", "status", path="clinicalStatus"),
        SearchParamSpec("category", "token", "category", path="category"),
        SearchParamSpec("date", "date", "recorded", path="recordedDate"),
        SearchParamSpec("no-path", "token", "declared without a path"),
    )

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        self.seen.append(request)
        return SearchResult(matches=[])


async def filtered(query: str) -> tuple[list[str], DeclaringNHSAllergies]:
    store = InMemoryPASStore()
    await store.create(
        PatientData(
            {"hospitalNumber": "H1", "nhsNumber": "9000000009"},
            allergies=(
                {"allergyId": "A1", "substanceText": "Penicillin", "status": "A", "recordedDate": "01/02/2020"},
                {"allergyId": "A2", "substanceText": "Shellfish", "status": "R", "recordedDate": "15/06/2024"},
                {"allergyId": "A3", "substanceText": "Latex", "status": "I"},
            ),
        )
    )
    service = PASService(PASMappings(load_profile("pas/reference_pas")), store, ProviderRegistry())
    inner = DeclaringNHSAllergies()
    provider = ClinicalWithPAS("AllergyIntolerance", inner, service)
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    request = parse_search(pairs, SearchDeclaration("AllergyIntolerance", provider.search_params))
    result = await provider.search(request, CTX)
    return [r["id"] for r in result.matches], inner


async def test_token_and_date_parameters_filter_pas_records() -> None:
    assert (await filtered("patient=pas-H1"))[0] == ["pas-H1-A1", "pas-H1-A2", "pas-H1-A3"]
    assert (await filtered("patient=pas-H1&clinical-status=resolved,inactive"))[0] == ["pas-H1-A2", "pas-H1-A3"]
    assert (await filtered(f"patient=pas-H1&clinical-status={CLINICAL}|active"))[0] == ["pas-H1-A1"]
    assert (await filtered("patient=pas-H1&clinical-status:not=active"))[0] == ["pas-H1-A2", "pas-H1-A3"]
    assert (await filtered("patient=pas-H1&date=ge2024"))[0] == ["pas-H1-A2"]  # A3 has no date: no match
    assert (await filtered("patient=pas-H1&date:missing=true"))[0] == ["pas-H1-A3"]
    assert (await filtered("patient=pas-H1&category=food"))[0] == []  # PAS allergies carry no category
    ids, inner = await filtered("patient=pas-H1&clinical-status=active&date=lt2021")
    assert ids == ["pas-H1-A1"]
    assert [p.name for p in inner.seen[0].params] == ["patient", "clinical-status", "date"]  # NHS asked alike


async def test_a_parameter_pas_records_cannot_be_filtered_by_is_a_400_before_nhs_is_asked() -> None:
    with pytest.raises(NotSupportedParameter) as raised:
        await filtered("patient=pas-H1&no-path=x")
    assert raised.value.status == 400 and "'no-path'" in raised.value.diagnostics


async def test_pas_store_down_is_a_503_not_an_nhs_only_list() -> None:
    class DownStore(InMemoryPASStore):
        async def get(self, hospital_number: str):  # type: ignore[no-untyped-def]
            raise StoreUnavailable("get", "ServerSelectionTimeoutError", confirmed_not_written=True)

        async def find_by_nhs_number(self, nhs_number: str):  # type: ignore[no-untyped-def]
            raise StoreUnavailable("find", "ServerSelectionTimeoutError", confirmed_not_written=True)

    service = PASService(PASMappings(load_profile("pas/reference_pas")), DownStore(), ProviderRegistry())
    inner = NHSAllergies()
    provider = ClinicalWithPAS("AllergyIntolerance", inner, service)
    for ref in ("Patient/pas-H1", "Patient/9000000009"):
        with pytest.raises(ServiceUnavailable) as raised:
            await provider.search(by_patient(ref), CTX)
        assert raised.value.headers["Retry-After"] == "5"
    with pytest.raises(ServiceUnavailable):
        await provider.read("pas-H1-A1", CTX)
    assert inner.seen == []
