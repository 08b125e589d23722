"""_revinclude over real sockets: Patient ← MedicationRequest / AllergyIntolerance /
ServiceRequest:patient, resolved by each source's own patient search in the emulator."""

from __future__ import annotations

from typing import Any

import aiohttp

from server.sources.pds.source import SOURCE as PDS_SOURCE
from tests.support.access import CPT_PRACTITIONER
from tests.support.checked_client import CheckedClient
from tests.support.servers import Emulator, running_facade

REVS = ("MedicationRequest:patient", "AllergyIntolerance:patient", "ServiceRequest:patient")
JANE = "identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"


def by_mode(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def warnings(bundle: dict[str, Any]) -> list[str]:
    return [i["diagnostics"] for r in by_mode(bundle, "outcome") for i in r["issue"] if i["severity"] == "warning"]


def revs(*names: str) -> str:
    return "".join(f"&_revinclude={n}" for n in names)


async def own_search_ids(fhir: CheckedClient, resource_type: str) -> set[str]:
    answer = await fhir.get(f"/{resource_type}?patient=9000000009", headers=CPT_PRACTITIONER)
    assert answer.status == 200, answer.body
    return {r["id"] for r in by_mode(answer.body, "match")}


async def test_patient_search_rev_includes_each_source_types_records(fhir: CheckedClient) -> None:
    answer = await fhir.get(f"/Patient?{JANE}{revs(*REVS)}", headers=CPT_PRACTITIONER)
    assert answer.status == 200, answer.body
    bundle = answer.body
    assert bundle["total"] == 1 and [p["id"] for p in by_mode(bundle, "match")] == ["9000000009"]
    included = by_mode(bundle, "include")
    for resource_type in ("MedicationRequest", "AllergyIntolerance", "ServiceRequest"):
        ids = {r["id"] for r in included if r["resourceType"] == resource_type}
        assert ids and ids == await own_search_ids(fhir, resource_type), resource_type
    assert len(included) == len({(r["resourceType"], r["id"]) for r in included})
    assert warnings(bundle) == []
    self_link = next(lk["url"] for lk in bundle["link"] if lk["relation"] == "self")
    assert all(f"_revinclude={n.replace(':', '%3A')}" in self_link for n in REVS)


async def test_rev_includes_follow_the_page(fhir: CheckedClient) -> None:
    """Two Smiths, one per page: each page carries the referrals of its own patient only."""
    first = (await fhir.get(f"/Patient?family=Smith&birthdate=ge2000&_count=1{revs('ServiceRequest:patient')}")).body
    assert first["total"] == 2
    pages = [first]
    nxt = next(lk["url"] for lk in first["link"] if lk["relation"] == "next")
    pages.append((await fhir.get(nxt)).body)
    for page in pages:
        [patient] = by_mode(page, "match")
        for referral in by_mode(page, "include"):
            assert referral["subject"]["reference"] == f"Patient/{patient['id']}"
    assert any(by_mode(p, "include") for p in pages)


async def test_a_failing_reverse_search_is_a_warning_and_the_rest_still_arrive(fhir: CheckedClient) -> None:
    """No NHS session headers: CPT cannot be asked, so that rev-include warns; the others work."""
    answer = await fhir.get(f"/Patient?{JANE}{revs('MedicationRequest:patient', 'ServiceRequest:patient')}")
    assert answer.status == 200, answer.body
    included = by_mode(answer.body, "include")
    assert included and {r["resourceType"] for r in included} == {"ServiceRequest"}
    [warning] = warnings(answer.body)
    assert "_revinclude=MedicationRequest:patient" in warning and "nhsd-session-urid" in warning.lower()


async def test_an_upstream_outage_becomes_a_warning(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{emulator.url}/_control/faults", json={"path_prefix": "/gpconnect", "status": 503, "times": -1}
    ) as resp:
        assert resp.status == 200
    answer = await fhir.get(f"/Patient?{JANE}{revs('AllergyIntolerance:patient')}")
    assert answer.status == 200, answer.body
    assert by_mode(answer.body, "include") == []
    assert any("AllergyIntolerance:patient" in w for w in warnings(answer.body))


async def test_unknown_rev_include_lenient_and_strict(fhir: CheckedClient) -> None:
    lenient = await fhir.get(f"/Patient?{JANE}&_revinclude=Observation:patient")
    assert lenient.status == 200 and by_mode(lenient.body, "include") == []
    assert "_revinclude" not in next(lk["url"] for lk in lenient.body["link"] if lk["relation"] == "self")
    strict = await fhir.get(f"/Patient?{JANE}&_revinclude=Observation:patient", headers={"Prefer": "handling=strict"})
    assert strict.status == 400 and "_revinclude=Observation:patient" in strict.issue["diagnostics"]


async def test_metadata_lists_rev_includes_only_for_registered_sources(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(emulator) as url:
        full = (await CheckedClient(url, http).get("/metadata")).body
    patient = next(r for r in full["rest"][0]["resource"] if r["type"] == "Patient")
    # Derived from every registered reference parameter that may point at a Patient (as
    # HAPI does): the clinical types' patient and subject, and the audit trail's.
    assert sorted(patient["searchRevInclude"]) == sorted(
        {*REVS, "MedicationRequest:subject", "ServiceRequest:subject", "AuditEvent:patient", "AuditEvent:agent"}
    )
    # Without the referral provider, ServiceRequest is not served: not advertised, and refused under strict.
    async with running_facade(emulator, sources=(PDS_SOURCE,)) as url:
        fhir = CheckedClient(url, http)
        partial = (await fhir.get("/metadata")).body
        patient = next(r for r in partial["rest"][0]["resource"] if r["type"] == "Patient")
        assert "ServiceRequest:patient" not in patient.get("searchRevInclude", [])
        refused = await fhir.get(
            f"/Patient?{JANE}&_revinclude=ServiceRequest:patient", headers={"Prefer": "handling=strict"}
        )
        assert refused.status == 400
