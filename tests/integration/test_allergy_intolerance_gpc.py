"""AllergyIntolerance from GP Connect over real sockets: test -> façade -> emulator.

Every body the façade answers with is validated as R4 (fhir.resources.R4B).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.support.emulator_control import inject, reset_emulator, upstream_counts
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator, FHIRClient, running_facade

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
JANE = "9000000009"
GPC = "/gpconnect"


async def get_ok(facade: FHIRClient, path: str, status: int = 200) -> Any:
    got, _, body = await facade.get(path)
    assert got == status, (path, got, body)
    validate_r4(body)
    return body


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]


def codes(bundle: dict[str, Any]) -> list[str]:
    return sorted(r["code"]["coding"][0]["code"] for r in matches(bundle))


def outcome(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        i
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] == "OperationOutcome"
        for i in e["resource"]["issue"]
    ]


def spine_code(body: dict[str, Any]) -> str:
    return body["issue"][0]["details"]["coding"][0]["code"]


async def upstream_calls(emulator: Emulator, http: aiohttp.ClientSession) -> int:
    return sum(n for k, n in (await upstream_counts(http, emulator)).items() if GPC in k)


ACTIVE = ["196461000000101", "372687004", "91935009"]


async def test_search_by_patient_in_every_form(facade: FHIRClient) -> None:
    forms = [
        f"patient={JANE}",
        f"patient=Patient/{JANE}",
        f"patient={facade.base_url}/Patient/{JANE}",
        f"patient:Patient={JANE}",
        f"patient:identifier={quote(NHS_SYSTEM)}|{JANE}",
        f"patient.identifier={quote(NHS_SYSTEM)}|{JANE}",
    ]
    ids = None
    for form in forms:
        bundle = await get_ok(facade, f"/AllergyIntolerance?{form}")
        assert codes(bundle) == ACTIVE, form
        found = sorted(r["id"] for r in matches(bundle))
        assert ids is None or found == ids  # same façade ids whatever the form
        ids = found
        for allergy in matches(bundle):
            assert allergy["patient"] == {
                "reference": f"Patient/{JANE}",
                "identifier": {"system": NHS_SYSTEM, "value": JANE},
            }


async def test_default_search_is_active_only_and_says_what_it_left_out(facade: FHIRClient) -> None:
    bundle = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}")
    by_code = {r["code"]["coding"][0]["code"]: r for r in matches(bundle)}
    amox = by_code["372687004"]
    assert (
        amox["clinicalStatus"]["coding"][0]["system"]
        == "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
    )
    assert amox["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert amox["recordedDate"] == "2019-12-10T13:00:00+00:00" and amox["onsetDateTime"] == "2019-12-09"
    reaction = amox["reaction"][0]
    assert reaction["severity"] == "mild" and reaction["description"] == "Itchy wheals on arms"
    assert reaction["exposureRoute"]["coding"][0]["code"] == "26643006"
    assert amox["recorder"]["identifier"]["value"] == "G9876543"
    assert by_code["196461000000101"]["code"]["text"] == "Allergy to co-codamol"
    texts = [i["diagnostics"] for i in outcome(bundle)]
    assert any("Only active allergies" in t for t in texts)
    assert any("transfer-degraded" in t for t in texts)


async def test_clinical_status_filters_and_switches_resolved_on(facade: FHIRClient) -> None:
    resolved = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&clinical-status=resolved")
    (aspirin,) = matches(resolved)
    assert aspirin["code"]["coding"][0]["code"] == "293586001"
    assert aspirin["clinicalStatus"]["extension"][0]["url"].endswith("Extension-UKCore-AllergyIntoleranceEnd")
    both = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&clinical-status=active,resolved")
    assert codes(both) == sorted(ACTIVE + ["293586001"])
    active = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&clinical-status=active")
    assert codes(active) == ACTIVE
    not_active = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&clinical-status:not=active")
    assert codes(not_active) == ["293586001"]
    inactive = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&clinical-status=inactive")
    assert codes(inactive) == []


async def test_category_criticality_and_date_filters(facade: FHIRClient) -> None:
    assert codes(await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&category=food")) == ["91935009"]
    medication = await get_ok(
        facade,
        f"/AllergyIntolerance?patient={JANE}&category="
        f"{quote('http://hl7.org/fhir/allergy-intolerance-category')}|medication",
    )
    assert codes(medication) == ["196461000000101", "372687004"]
    assert codes(await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&criticality=high")) == ["91935009"]
    assert codes(await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&date=ge2015&date=lt2016")) == ["91935009"]
    newest = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&_sort=-date")
    assert [r["recordedDate"][:4] for r in matches(newest)] == ["2019", "2015", "2012"]


async def test_no_known_allergies_patient(facade: FHIRClient) -> None:
    bundle = await get_ok(facade, "/AllergyIntolerance?patient=9000000017")
    (nka,) = matches(bundle)
    assert nka["code"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "716186003",
        "display": "No known allergy",
    }
    assert nka["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert matches(await get_ok(facade, "/AllergyIntolerance?patient=9000000017&clinical-status=resolved")) == []
    assert await get_ok(facade, f"/AllergyIntolerance/{nka['id']}") == nka


async def test_nothing_recorded_is_an_empty_searchset_with_the_gps_note(facade: FHIRClient) -> None:
    bundle = await get_ok(facade, "/AllergyIntolerance?patient=9000000033")
    assert matches(bundle) == [] and bundle["total"] == 0
    assert any("has not been confirmed" in i["diagnostics"] for i in outcome(bundle))


async def test_list_warning_reaches_the_client(facade: FHIRClient) -> None:
    bundle = await get_ok(facade, "/AllergyIntolerance?patient=9000000092")
    assert codes(bundle) == ["260147004"]
    assert any(i["severity"] == "warning" and "confidentiality" in i["diagnostics"] for i in outcome(bundle))


async def test_include_patient_resolves_through_the_patient_provider(facade: FHIRClient) -> None:
    bundle = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&_include=AllergyIntolerance:patient")
    included = [e["resource"] for e in bundle["entry"] if e.get("search", {}).get("mode") == "include"]
    assert [(p["resourceType"], p["id"]) for p in included] == [("Patient", JANE)]
    assert len(matches(bundle)) == 3


async def test_read_by_issued_id(facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession) -> None:
    bundle = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&clinical-status=active,resolved")
    for allergy in matches(bundle):
        assert await get_ok(facade, f"/AllergyIntolerance/{allergy['id']}") == allergy
    gone = await get_ok(facade, f"/AllergyIntolerance/gpc-{JANE}-0123456789abcdef", 404)
    assert "no longer" in gone["issue"][0]["diagnostics"]
    before = await upstream_calls(emulator, http)
    for foreign in ("not-ours", "gpc-9000000000-0123456789abcdef", f"{JANE}"):
        await get_ok(facade, f"/AllergyIntolerance/{foreign}", 404)
    assert await upstream_calls(emulator, http) == before


async def test_bad_searches_are_400_with_no_upstream_call(
    facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    invalid = await get_ok(facade, "/AllergyIntolerance?patient=9000000000", 400)
    assert spine_code(invalid) == "INVALID_RESOURCE_ID"  # the façade's one code for an invalid NHS number
    for query in (
        "",
        "?category=food",
        "?patient=9000000009,9000000017",
        f"?patient:identifier={quote('http://other.example/id')}|9000000009",
        "?patient=Patient/abc",
        "?patient=Practitioner/9000000009",
    ):
        await get_ok(facade, f"/AllergyIntolerance{query}", 400)
    assert await upstream_calls(emulator, http) == 0


async def test_gp_connect_errors_become_honest_statuses(
    facade: FHIRClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    consent = await get_ok(facade, "/AllergyIntolerance?patient=9000000068", 403)
    assert spine_code(consent) == "NO_PATIENT_CONSENT"
    for nhs in ("9000000025", "9111231130"):  # sensitive; unknown to the GP
        assert spine_code(await get_ok(facade, f"/AllergyIntolerance?patient={nhs}", 404)) == "PATIENT_NOT_FOUND"
    for fault, status in (
        ({"status": 500}, 502),
        ({"status": 503}, 503),
        ({"malformed": True}, 502),
        ({"status": 403}, 502),
    ):
        await inject(http, emulator, path_prefix=GPC, times=-1, **fault)  # persistent: retries see it too
        await get_ok(facade, f"/AllergyIntolerance?patient={JANE}", status)
        await reset_emulator(http, emulator)
    await inject(http, emulator, path_prefix=GPC, status=200, body={"resourceType": "Bundle", "type": "searchset"})
    await get_ok(facade, f"/AllergyIntolerance?patient={JANE}", 502)


async def test_slow_gp_connect_is_a_504(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, upstream_read_timeout=0.2) as url:
        facade = FHIRClient(url, http)
        await inject(http, emulator, path_prefix=GPC, delay=0.5, times=-1)
        await get_ok(facade, f"/AllergyIntolerance?patient={JANE}", 504)


async def test_gateway_mode_passes_the_callers_token(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, gpconnect_auth_mode="gateway") as url:
        facade = FHIRClient(url, http)
        await get_ok(facade, f"/AllergyIntolerance?patient={JANE}", 401)
        status, _, body = await facade.get(
            f"/AllergyIntolerance?patient={JANE}", headers={"X-NHS-User-Token": "cis2-user-token"}
        )
        assert status == 200 and codes(body) == ACTIVE
        validate_r4(body)


async def test_metadata_lists_allergy_intolerance(facade: FHIRClient) -> None:
    statement = await get_ok(facade, "/metadata")
    (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "AllergyIntolerance"]
    assert entry["profile"] == "https://fhir.hl7.org.uk/StructureDefinition/UKCore-AllergyIntolerance"
    assert entry["searchInclude"] == ["AllergyIntolerance:patient"]
    assert {p["name"] for p in entry["searchParam"]} == {
        "_id",
        "patient",
        "clinical-status",
        "verification-status",
        "category",
        "criticality",
        "date",
    }
    assert {i["code"] for i in entry["interaction"]} == {"read", "vread", "search-type"}


async def test_sandbox_mode_uses_the_embedded_emulator(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """No GP Connect URL set: the façade starts its own emulator and still answers valid R4."""
    async with running_facade(emulator, gpconnect_base_url=None) as url:
        facade = FHIRClient(url, http)
        bundle = await get_ok(facade, f"/AllergyIntolerance?patient={JANE}&_include=AllergyIntolerance:patient")
        assert codes(bundle) == ACTIVE
    assert await upstream_calls(emulator, http) == 0  # the test's emulator was not the one asked
