"""MedicationRequest from the Prescription Tracker, over real sockets: test -> façade ->
CPT emulator (and PDS emulator for _include). Every body is validated as R4."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from server.sources.cpt.emulator import REFUSED_TOKEN
from tests.support.emulator_control import inject, upstream_counts
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator, FHIRClient, running_facade
from tests.support.tokens import bearer

H = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
}
NHS = "https://fhir.nhs.uk/Id/nhs-number"
ORDER = "https://fhir.nhs.uk/Id/prescription-order-number"
ACUTE = "A1F3C2-A83008-4B7E1K"
ERD = "B7C21D-A83008-9D44E+"
ERD_ITEM = "7A6B5C4D-3E2F-4A1B-8C9D-0E1F2A3B4C5D"
ACUTE_IDS = [
    f"{ACUTE}.6F2D1A44-0B5E-4C1B-9E3A-1D2C3B4A5F60",
    f"{ACUTE}.0C9E8B7A-6D5C-4B3A-8F1E-2D3C4B5A6978",
    f"{ACUTE}.D4C3B2A1-9F8E-4D7C-A6B5-4A3B2C1D0E9F",
]
ERD_IDS = [f"B7C21D-A83008-9D44Ep.1.{ERD_ITEM}", f"B7C21D-A83008-9D44Ep.2.{ERD_ITEM}"]
CPT = "/clinical-prescription-tracker"


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


@pytest.mark.parametrize(
    "query",
    [
        "patient=9000000009",
        "patient=Patient/9000000009",
        "subject=9000000009",
        f"patient.identifier={quote(NHS)}|9000000009",
        f"subject:identifier={quote(NHS)}|9000000009",
    ],
)
async def test_search_by_patient_in_every_form(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator, query: str
) -> None:
    status, _, body = await facade.get(f"/MedicationRequest?{query}", headers=H)
    assert status == 200, body
    validate_r4(body)
    assert body["total"] == 5
    # Newest prescription first; line items in prescription order.
    assert [m["id"] for m in matches(body)] == ACUTE_IDS + ERD_IDS
    for m in matches(body):
        assert m["subject"] == {"reference": "Patient/9000000009", "identifier": {"system": NHS, "value": "9000000009"}}
    seen = await upstream_counts(http, emulator)
    assert seen == {
        f"GET {CPT}/RequestGroup?nhsNumber=9000000009": 1,
        f"GET {CPT}/RequestGroup/{ACUTE}": 1,
        f"GET {CPT}/RequestGroup/{ERD}?issueNumber=1": 1,
        f"GET {CPT}/RequestGroup/{ERD}?issueNumber=2": 1,
    }


async def test_search_keeps_nhs_identifiers_and_dispensing_status(facade: FHIRClient) -> None:
    _, _, body = await facade.get("/MedicationRequest?patient=9000000009", headers=H)
    acute = matches(body)[:3]
    assert {m["groupIdentifier"]["value"] for m in acute} == {ACUTE}
    assert [m["identifier"][0]["system"] for m in acute] == [
        "https://fhir.nhs.uk/Id/prescription-order-item-number"
    ] * 3
    dispense = [
        next(e for e in m["extension"] if e["url"].endswith("Extension-EPS-DispensingInformation"))["extension"][0][
            "valueCoding"
        ]["code"]
        for m in acute
    ]
    assert dispense == ["0001", "0003", "0004"]  # fully, partially, owing: partially dispensed prescription
    erd = matches(body)[3]
    repeat = next(e for e in erd["extension"] if e["url"].endswith("Extension-EPS-RepeatInformation"))
    assert repeat["extension"][0] == {"url": "numberOfRepeatsIssued", "valueInteger": 1}


async def test_include_patient_from_pds(facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator) -> None:
    status, _, body = await facade.get(
        "/MedicationRequest?patient=9000000009&_include=MedicationRequest:patient", headers=H
    )
    assert status == 200
    validate_r4(body)
    assert body["total"] == 5  # matches only
    included = [e for e in body["entry"] if e["search"]["mode"] == "include"]
    assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in included] == [("Patient", "9000000009")]
    assert included[0]["fullUrl"].endswith("/Patient/9000000009")
    assert (await upstream_counts(http, emulator))["GET /personal-demographics/FHIR/R4/Patient/9000000009"] == 1


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=active", [ACUTE_IDS[1], ACUTE_IDS[2], ERD_IDS[1]]),
        ("status:not=active", [ACUTE_IDS[0], ERD_IDS[0]]),
        ("status=completed,cancelled", [ACUTE_IDS[0], ERD_IDS[0]]),
        ("intent=reflex-order", ERD_IDS),
        ("intent=order", ACUTE_IDS),
        ("authoredon=ge2026-03", ACUTE_IDS),
        ("authoredon=lt2026-02-01", ERD_IDS),
        ("authoredon=2026-01-05", ERD_IDS),
        ("authoredon=gt2026-01-06&authoredon=lt2026-03-11", ACUTE_IDS),
        (f"identifier=https://fhir.nhs.uk/Id/prescription-order-item-number|{ERD_ITEM}", ERD_IDS),
        ("status=active&intent=reflex-order", [ERD_IDS[1]]),
        ("status=entered-in-error", []),
    ],
)
async def test_local_filters(facade: FHIRClient, query: str, expected: list[str]) -> None:
    status, _, body = await facade.get(f"/MedicationRequest?patient=9000000009&{query}", headers=H)
    assert status == 200, body
    validate_r4(body)
    assert [m["id"] for m in matches(body)] == expected
    assert body["total"] == len(expected)


async def test_sort_by_authoredon(facade: FHIRClient) -> None:
    _, _, body = await facade.get("/MedicationRequest?patient=9000000009&_sort=authoredon", headers=H)
    assert [m["id"] for m in matches(body)][:2] == ERD_IDS


async def test_paging_walks_every_match_once(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    status, _, body = await facade.get("/MedicationRequest?patient=9000000009&_count=2", headers=H)
    assert status == 200
    seen = [m["id"] for m in matches(body)]
    pages = 1
    while nxt := next((link["url"] for link in body["link"] if link["relation"] == "next"), None):
        async with http.get(nxt, headers={**H, **bearer()}) as resp:
            assert resp.status == 200
            body = await resp.json(content_type=None)
        validate_r4(body)
        assert body["total"] == 5
        seen += [m["id"] for m in matches(body)]
        pages += 1
    assert pages == 3
    assert seen == ACUTE_IDS + ERD_IDS
    # Pages come from the search's snapshot: CPT was searched once.
    assert (await upstream_counts(http, emulator))[f"GET {CPT}/RequestGroup?nhsNumber=9000000009"] == 1


async def test_prescription_id_is_fetched_directly(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    status, _, body = await facade.get(f"/MedicationRequest?identifier={quote(ORDER)}|{quote(ERD)}", headers=H)
    assert status == 200, body
    validate_r4(body)
    assert [m["id"] for m in matches(body)] == [ERD_IDS[1]]  # CPT's current issue
    assert await upstream_counts(http, emulator) == {f"GET {CPT}/RequestGroup/{ERD}": 1}


async def test_prescription_id_for_another_patient_is_filtered_out(facade: FHIRClient) -> None:
    status, _, body = await facade.get(
        f"/MedicationRequest?patient=9000000017&identifier={quote(ORDER)}|{ACUTE}", headers=H
    )
    assert status == 200
    validate_r4(body)
    assert body["total"] == 0


async def test_unknown_prescription_id_is_no_match(facade: FHIRClient) -> None:
    status, _, body = await facade.get(f"/MedicationRequest?identifier={quote(ORDER)}|FFFFFF-A83008-00000Z", headers=H)
    assert status == 200
    validate_r4(body)
    assert body["total"] == 0


async def test_patient_without_prescriptions_is_an_empty_searchset(facade: FHIRClient) -> None:
    status, _, body = await facade.get("/MedicationRequest?patient=9000000025", headers=H)
    assert status == 200
    validate_r4(body)
    assert body["total"] == 0


async def test_read_issued_id_and_conditional_read(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    _, _, search = await facade.get("/MedicationRequest?patient=9000000009", headers=H)
    wanted = next(m for m in matches(search) if m["id"] == ERD_IDS[0])
    status, headers, body = await facade.get(f"/MedicationRequest/{ERD_IDS[0]}", headers=H)
    assert status == 200
    validate_r4(body)
    assert body == wanted
    assert (await upstream_counts(http, emulator))[f"GET {CPT}/RequestGroup/{ERD}?issueNumber=1"] == 2
    status, again, _ = await facade.get(
        f"/MedicationRequest/{ERD_IDS[0]}", headers={**H, "If-None-Match": headers["ETag"]}
    )
    assert status == 304
    assert again["ETag"] == headers["ETag"]
    status, _, vread = await facade.get(
        f"/MedicationRequest/{ERD_IDS[0]}/_history/{body['meta']['versionId']}", headers=H
    )
    assert status == 200 and vread == body


@pytest.mark.parametrize(
    "rid, upstream_calls",
    [
        ("not-one-of-ours", 0),  # cannot name a prescription
        (f"{ACUTE}.00000000-0000-4000-8000-000000000000", 1),  # real prescription, no such item
        ("FFFFFF-A83008-00000Z.00000000-0000-4000-8000-000000000000", 1),  # CPT 404
        (f"{ACUTE}.7.{ERD_ITEM}", 1),  # no issue 7 (CPT 404)
    ],
)
async def test_read_unknown_is_404(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator, rid: str, upstream_calls: int
) -> None:
    status, _, body = await facade.get(f"/MedicationRequest/{rid}", headers=H)
    assert status == 404
    validate_r4(body)
    assert body["issue"][0]["code"] == "not-found"
    assert sum((await upstream_counts(http, emulator)).values()) == upstream_calls
    if rid.startswith("FFFFFF"):  # CPT's own 404: its code stays under CPT's code system
        assert body["issue"][0]["details"]["coding"][0]["system"] == "https://fhir.nhs.uk/CodeSystem/http-error-codes"


@pytest.mark.parametrize("query", ["patient=9000000000", "patient=123", f"patient.identifier={quote(NHS)}|9000000001"])
async def test_invalid_nhs_number_is_400_without_upstream_call(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator, query: str
) -> None:
    status, _, body = await facade.get(f"/MedicationRequest?{query}", headers=H)
    assert status == 400
    validate_r4(body)
    assert "NHS number" in body["issue"][0]["diagnostics"]
    assert await upstream_counts(http, emulator) == {}


async def test_search_without_patient_is_400(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    status, _, body = await facade.get("/MedicationRequest?status=active", headers=H)
    assert status == 400
    validate_r4(body)
    assert "patient=<NHS number>" in body["issue"][0]["diagnostics"]
    assert await upstream_counts(http, emulator) == {}


@pytest.mark.parametrize("missing", sorted(H))
@pytest.mark.parametrize("path", ["/MedicationRequest?patient=9000000009", f"/MedicationRequest/{ACUTE_IDS[0]}"])
async def test_missing_session_header_is_400_naming_it(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator, missing: str, path: str
) -> None:
    status, _, body = await facade.get(path, headers={k: v for k, v in H.items() if k != missing})
    assert status == 400
    validate_r4(body)
    assert body["issue"][0]["code"] == "required"
    assert f"'{missing}'" in body["issue"][0]["diagnostics"]
    assert await upstream_counts(http, emulator) == {}


async def test_callers_bearer_token_reaches_cpt(facade: FHIRClient) -> None:
    ok, _, _ = await facade.get(
        "/MedicationRequest?patient=9000000009", headers={**H, "X-NHS-User-Token": "a-good-cis2-token"}
    )
    assert ok == 200
    status, headers, body = await facade.get(
        "/MedicationRequest?patient=9000000009", headers={**H, "X-NHS-User-Token": REFUSED_TOKEN}
    )
    assert status == 401  # CPT refused the *user's* token, so the user must re-authenticate
    validate_r4(body)
    assert "Bearer" in headers["WWW-Authenticate"]
    assert REFUSED_TOKEN not in str(body)


@pytest.mark.parametrize("upstream_status, expected", [(500, 502), (503, 503), (502, 503)])
async def test_cpt_search_failure_is_reported_honestly(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator, upstream_status: int, expected: int
) -> None:
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup", status=upstream_status, times=-1)
    status, headers, body = await facade.get("/MedicationRequest?patient=9000000009", headers=H)
    assert status == expected
    validate_r4(body)
    assert "CPT" in body["issue"][0]["diagnostics"]
    if expected == 503:
        assert "Retry-After" in headers


async def test_failed_detail_call_fails_the_whole_search(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup/{ERD}", status=500, times=5)
    status, _, body = await facade.get("/MedicationRequest?patient=9000000009", headers=H)
    assert status == 502  # never a medication list silently missing a prescription
    validate_r4(body)


async def test_detail_vanished_since_search_gives_warning_and_the_rest(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    await inject(
        http,
        emulator,
        path_prefix=f"{CPT}/RequestGroup/{ACUTE}",
        status=404,
        times=1,
        body={"resourceType": "OperationOutcome", "issue": [{"code": "not-found", "severity": "error"}]},
    )
    status, _, body = await facade.get("/MedicationRequest?patient=9000000009", headers=H)
    assert status == 200
    validate_r4(body)
    assert [m["id"] for m in matches(body)] == ERD_IDS
    outcome = next(e["resource"] for e in body["entry"] if e["search"]["mode"] == "outcome")
    assert outcome["issue"][0]["severity"] == "warning"


async def test_malformed_cpt_answer_is_502(facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator) -> None:
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup", malformed=True, times=1)
    status, _, body = await facade.get("/MedicationRequest?patient=9000000009", headers=H)
    assert status == 502
    validate_r4(body)


async def test_metadata_advertises_medication_request(facade: FHIRClient) -> None:
    status, _, body = await facade.get("/metadata")
    assert status == 200
    validate_r4(body)
    resource = next(r for r in body["rest"][0]["resource"] if r["type"] == "MedicationRequest")
    params = {p["name"]: p["type"] for p in resource["searchParam"]}
    assert {k: params[k] for k in ("patient", "subject", "identifier", "status", "authoredon", "intent")} == {
        "patient": "reference",
        "subject": "reference",
        "identifier": "token",
        "status": "token",
        "authoredon": "date",
        "intent": "token",
    }
    assert resource["searchInclude"] == ["MedicationRequest:patient", "MedicationRequest:subject"]
    assert {i["code"] for i in resource["interaction"]} >= {"read", "search-type"}


async def test_sandbox_mode_serves_9000000009(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """No upstream URLs at all: the façade's own embedded emulator answers."""
    async with running_facade(emulator, pds_base_url=None, cpt_base_url=None) as url:
        client = FHIRClient(url, http)
        status, _, body = await client.get(
            "/MedicationRequest?patient=9000000009&_include=MedicationRequest:patient", headers=H
        )
    assert status == 200
    validate_r4(body)
    assert body["total"] == 5
    assert await upstream_counts(http, emulator) == {}  # the test emulator was not used


async def test_cpt_data_that_cannot_be_valid_r4_is_502(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    """A 200 from CPT whose line item converts to invalid R4 is never served."""
    item = {
        "resourceType": "MedicationRequest",
        "id": "i1",
        "status": "active",
        "intent": "order",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/prescription-order-item-number", "value": "ITEM-1"}],
        "groupIdentifier": {"system": ORDER, "value": ACUTE},
        "medicationCodeableConcept": {"text": "x"},
        "subject": {"identifier": {"system": NHS, "value": "9000000009"}},
        "dispenseRequest": {"quantity": {"value": "LOTS-OF-PHI", "unit": "tablet"}},
    }
    body = {"resourceType": "Bundle", "type": "searchset", "entry": [{"fullUrl": "urn:uuid:i1", "resource": item}]}
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup/{ACUTE}", status=200, body=body, times=1)
    status, _, outcome = await facade.get("/MedicationRequest?patient=9000000009", headers=H)
    assert status == 502
    validate_r4(outcome)
    assert "dispenseRequest" in outcome["issue"][0]["diagnostics"]
    assert "LOTS-OF-PHI" not in str(outcome)
