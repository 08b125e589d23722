"""`GET Patient/{id}/$everything` over real sockets: the patient and their records in one
searchset, paged, each part behind its type's own access checks, failures as warnings,
and one AuditEvent naming the operation (issue 10)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp

from tests.support.access import CLINICIAN, CPT, JANE, audit_events, auth, by_request_id, matches, warnings
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import inject
from tests.support.servers import Emulator
from tests.support.tokens import token

CLINICAL = ("AllergyIntolerance", "MedicationRequest", "ServiceRequest")
NO_ALLERGIES = token(
    "user/Patient.rs user/MedicationRequest.rs user/ServiceRequest.rs", roles=["clinician"], subject="no-allergies"
)


def types_of(bundle: dict[str, Any]) -> Counter[str]:
    return Counter(r["resourceType"] for r in matches(bundle))


async def everything(fhir: CheckedClient, query: str = "", value: str = CLINICIAN) -> Any:
    return await fhir.get(f"/Patient/{JANE}/$everything{query}", headers=auth(value, **CPT))


async def test_everything_returns_the_patient_and_each_clinical_type(fhir: CheckedClient) -> None:
    answer = await everything(fhir, "?_count=100")
    assert answer.status == 200, answer.body
    bundle = answer.body
    assert bundle["type"] == "searchset"
    found = types_of(bundle)
    assert found["Patient"] == 1 and matches(bundle)[0]["id"] == JANE
    assert all(found[t] > 0 for t in CLINICAL), found
    assert "AuditEvent" not in found  # the trail is about the record, not in it
    assert bundle["total"] == sum(found.values())
    # The sources' own notes (e.g. GP Connect's degraded allergies) pass through; no part failed.
    assert not [w for w in warnings(bundle) if "could not" in w or "left out" in w], warnings(bundle)
    for resource in matches(bundle)[1:]:
        subject = resource.get("subject") or resource.get("patient") or {}
        assert subject.get("reference", "").endswith(f"Patient/{JANE}"), resource
    # The same records a search of each type finds.
    for rtype in CLINICAL:
        alone = await fhir.get(f"/{rtype}?patient={JANE}&_count=100", headers=auth(CLINICIAN, **CPT))
        assert {r["id"] for r in matches(alone.body)} == {
            r["id"] for r in matches(bundle) if r["resourceType"] == rtype
        }, rtype


async def test_type_restricts_the_parts(fhir: CheckedClient) -> None:
    answer = await everything(fhir, "?_type=MedicationRequest,AllergyIntolerance&_count=100")
    assert answer.status == 200
    assert set(types_of(answer.body)) == {"MedicationRequest", "AllergyIntolerance"}
    self_link = next(link["url"] for link in answer.body["link"] if link["relation"] == "self")
    assert "_type=" in self_link and "$everything" in self_link


async def test_everything_pages_through_a_snapshot_bound_to_the_caller(fhir: CheckedClient) -> None:
    whole = await everything(fhir, "?_count=100")
    first = await everything(fhir, "?_count=2")
    assert first.status == 200 and len(matches(first.body)) == 2
    assert first.body["total"] == whole.body["total"]
    seen = [r["id"] for r in matches(first.body)]
    link = next(lk["url"] for lk in first.body["link"] if lk["relation"] == "next")
    while link:
        page = await fhir.get(link, headers=auth(CLINICIAN, **CPT))
        assert page.status == 200, page.body
        seen += [r["id"] for r in matches(page.body)]
        link = next((lk["url"] for lk in page.body["link"] if lk["relation"] == "next"), None)
    assert seen == [r["id"] for r in matches(whole.body)]
    # Someone else holding the link gets nothing; a search's paging does not serve it.
    stranger = await fhir.get(
        next(lk["url"] for lk in first.body["link"] if lk["relation"] == "next"),
        headers=auth(token("user/*.rs", roles=["clinician"], subject="someone-else"), **CPT),
    )
    assert stranger.status == 404
    key = next(lk["url"] for lk in first.body["link"] if lk["relation"] == "next").split("_getpages=")[1]
    assert (await fhir.get(f"/Patient?_getpages={key}", headers=auth(CLINICIAN, **CPT))).status == 410


async def test_count_zero_gives_the_total_only(fhir: CheckedClient) -> None:
    answer = await everything(fhir, "?_count=0")
    assert answer.status == 200 and answer.body["total"] > 3 and not matches(answer.body)


async def test_a_failing_source_is_a_warning_not_a_failure(
    fhir: CheckedClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    await inject(http, emulator, path_prefix="/gpconnect", status=500, times=-1)
    answer = await everything(fhir, "?_count=100")
    assert answer.status == 200, answer.body
    found = types_of(answer.body)
    assert "AllergyIntolerance" not in found and found["Patient"] == 1 and found["MedicationRequest"] > 0
    assert any(w.startswith("AllergyIntolerance could not be searched") for w in warnings(answer.body))


async def test_a_type_the_caller_may_not_search_is_a_warning_and_audited(fhir: CheckedClient) -> None:
    answer = await everything(fhir, "?_count=100", value=NO_ALLERGIES)
    assert answer.status == 200, answer.body
    found = types_of(answer.body)
    assert "AllergyIntolerance" not in found and found["MedicationRequest"] > 0
    assert any("AllergyIntolerance left out" in w and "scopes" in w for w in warnings(answer.body))
    events = by_request_id(await audit_events(fhir, patient=f"Patient/{JANE}"), answer.headers["X-Request-ID"])
    assert len(events) == 1
    event = events[0]
    assert [c["code"] for c in event["subtype"]] == ["operation", "everything"]
    assert event["outcome"] == "0" and "AllergyIntolerance left out" in event["outcomeDesc"]
    audited = {e["what"]["reference"] for e in event["entity"] if "reference" in e.get("what", {})}
    assert f"Patient/{JANE}" in audited
    assert {f"{r['resourceType']}/{r['id']}" for r in matches(answer.body)} <= audited


async def test_unknown_patient_is_404_and_a_refused_patient_is_403(fhir: CheckedClient) -> None:
    unknown = await fhir.get("/Patient/9111231130/$everything", headers=auth(CLINICIAN, **CPT))
    assert unknown.status == 404
    other_patient = token("patient/*.rs", roles=["clinician"], patient="9000000017", subject="other-app")
    refused = await everything(fhir, value=other_patient)
    assert refused.status == 403


async def test_relationship_checked_per_part(strict: CheckedClient) -> None:
    """With the relationship rule on and no PAS registration, the clinical parts are
    refused as their searches would be; demographics still come back."""
    answer = await everything(strict, "?_count=100")
    assert answer.status == 200
    assert set(types_of(answer.body)) == {"Patient"}
    assert sum("left out" in w for w in warnings(answer.body)) == len(CLINICAL)


async def test_everything_and_batch_are_advertised(fhir: CheckedClient, http: aiohttp.ClientSession) -> None:
    statement = (await fhir.get("/metadata")).body
    rest = statement["rest"][0]
    assert {"code": "batch"} in [{"code": i["code"]} for i in rest.get("interaction", [])]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert [(o["name"], o["definition"]) for o in patient.get("operation", [])] == [
        ("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything")
    ]
    assert all("operation" not in r for r in rest["resource"] if r["type"] != "Patient")
    async with http.get(fhir.base_url + "/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    assert "get" in paths["/Patient/{id}/$everything"] and "post" in paths["/"]
