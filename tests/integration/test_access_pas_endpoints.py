"""The PAS REST and HL7 paths under access control: a clerk neither reads nor writes the
clinical lists of a PAS record, clinical lists need a purpose of use, and the audit trail
names the patient (by NHS number) of every PAS read, write and HL7 message."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.access import JANE, PAS_SYSTEM, audit_events, auth, by_request_id, matches
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import gpconnect_jwt_claims
from tests.support.servers import Emulator
from tests.support.tokens import token

HL7 = (
    "MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^A04^ADT_A01|{control}|P|2.4\r"
    "EVN|A04|20260101120000\rPID|1||{hn}^^^RX1^MR||SMITH^JANE||20101022|F\r"
)

CLERK = token("user/*.rs user/Patient.cru", roles=["clerk"], purpose=None, subject="clerk-1")
RECORD = {
    "hospitalNumber": "H70",
    "surname": "Smith",
    "forenames": "Jane",
    "dateOfBirth": "22/10/2010",
    "sex": "F",
    "nhsNumber": JANE,
    "allergies": [
        {"allergyId": "A1", "substanceText": "Penicillin", "reaction": "Anaphylaxis", "severity": "SEV", "status": "A"}
    ],
    "medications": [{"prescriptionId": "P1", "drugText": "Sertraline 50mg tablets", "status": "A"}],
}


async def register(fhir: CheckedClient, http: aiohttp.ClientSession, record: dict[str, Any]) -> None:
    async with http.post(fhir.base_url + "/pas/v1/patients", headers=auth(PAS_SYSTEM), json=record) as resp:
        assert resp.status == 201, await resp.text()


# ---- a clerk gets no clinical data through the PAS record ----------------------------------------


async def test_a_clerk_reading_a_pas_record_gets_no_clinical_lists(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    await register(fhir, http, RECORD)
    async with http.get(fhir.base_url + "/pas/v1/patients/H70/allergies", headers=auth(CLERK)) as resp:
        assert resp.status == 403  # the clinical list endpoint refuses a clerk (sound)
    refused = await fhir.get("/AllergyIntolerance?patient=pas-H70", headers=auth(CLERK))
    assert refused.status == 403  # and so does FHIR (sound)
    async with http.get(fhir.base_url + "/pas/v1/patients/H70", headers=auth(CLERK)) as resp:
        assert resp.status == 200
        record = await resp.json()
    assert "allergies" not in record and "medications" not in record, record


async def test_a_clerk_cannot_write_clinical_lists(fhir: CheckedClient, http: aiohttp.ClientSession) -> None:
    async with http.post(fhir.base_url + "/pas/v1/patients", headers=auth(CLERK), json=RECORD) as resp:
        status = resp.status
    clinician = token("user/*.rs", roles=["clinician"])
    seen = await fhir.get("/AllergyIntolerance?patient=pas-H70", headers=auth(clinician))
    written = [a for a in matches(seen.body) if "Penicillin" in str(a)] if seen.status == 200 else []
    assert status in (400, 403) and not written, (status, written)


# ---- clinical lists need a purpose of use --------------------------------------------------------


async def test_the_pas_system_gets_no_gp_record_without_a_purpose_of_use(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    await register(fhir, http, {k: v for k, v in RECORD.items() if k not in ("allergies", "medications")})
    fhir_side = await fhir.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(PAS_SYSTEM))
    assert fhir_side.status == 403  # no role on the FHIR side at all (sound)
    async with http.get(fhir.base_url + "/pas/v1/patients/H70/allergies", headers=auth(PAS_SYSTEM)) as resp:
        body = await resp.json()
        status = resp.status
    asked = await gpconnect_jwt_claims(http, emulator)
    assert status == 403 and not asked, (status, body, asked)


# ---- the audit trail names the patient of every PAS access ------------------------------------


async def test_an_hl7_registration_is_audited_with_its_patient(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        fhir.base_url + "/pas/v1/hl7",
        data=HL7.format(control="R1", hn="H71").encode(),
        headers={**auth(PAS_SYSTEM), "Content-Type": "application/hl7-v2"},
    ) as resp:
        assert resp.status == 200 and "MSA|AA" in await resp.text()
        request_id = resp.headers["X-Request-ID"]
    [event] = by_request_id(await audit_events(fhir), request_id)
    assert event["action"] == "U" and event["outcome"] == "0"
    assert by_request_id(await audit_events(fhir, patient="Patient/pas-H71"), request_id), event["entity"]


async def test_a_pas_clinical_list_is_found_by_auditing_the_nhs_number(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    await register(fhir, http, RECORD)
    async with http.get(
        fhir.base_url + "/pas/v1/patients/H70/allergies", headers=auth(PAS_SYSTEM, **{"X-Purpose-Of-Use": "TREAT"})
    ) as resp:
        assert resp.status == 200
        assert any(a.get("substanceText") == "Penicillin" for a in (await resp.json())["allergies"])
        request_id = resp.headers["X-Request-ID"]
    [event] = by_request_id(await audit_events(fhir), request_id)
    assert by_request_id(await audit_events(fhir, patient=f"Patient/{JANE}"), request_id), event["entity"]
    assert event["subtype"][0]["code"] == "search-type"  # a list of the patient's records


# ---- PAS reads and writes are audited with the NHS number ------------------------------


async def test_a_pas_read_and_write_are_audited_with_the_nhs_number(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        fhir.base_url + "/pas/v1/patients",
        headers=auth(CLERK),
        json={k: v for k, v in RECORD.items() if k not in ("allergies", "medications")},
    ) as resp:
        assert resp.status == 201, await resp.text()
        written = resp.headers["X-Request-ID"]
    async with http.get(fhir.base_url + "/pas/v1/patients/H70", headers=auth(CLERK)) as resp:
        assert resp.status == 200
        read = resp.headers["X-Request-ID"]
    for_jane = await audit_events(fhir, patient=f"Patient/{JANE}")
    [create] = by_request_id(for_jane, written)
    [view] = by_request_id(for_jane, read)
    assert (create["action"], view["action"]) == ("C", "R")


async def test_a_patient_token_and_a_text_plain_post_never_reach_the_hl7_intake(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    app = token("patient/*.cruds", roles=["pas-system"], patient=JANE, purpose=None)
    async with http.post(
        fhir.base_url + "/pas/v1/hl7",
        data=HL7.format(control="R2", hn="H72").encode(),
        headers={**auth(app), "Content-Type": "application/hl7-v2"},
    ) as resp:
        assert resp.status == 403
    async with http.post(
        fhir.base_url + "/pas/v1/hl7",
        data=HL7.format(control="R3", hn="H73").encode(),
        headers={"Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 401
    async with http.get(fhir.base_url + "/pas/v1/patients/H72", headers=auth(PAS_SYSTEM)) as resp:
        assert resp.status == 404
