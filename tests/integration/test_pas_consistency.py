"""PAS records follow the NHS side's rules, over real sockets: the NHS source's default
search values (GP Connect: active allergies only), `subject=` naming a PAS patient, the
caller's context reaching the NHS APIs from the PAS endpoints, NHS failures as whole PAS
errors, and restricted patients never shown with PAS address, phone or GP."""

from __future__ import annotations

from typing import Any

import aiohttp

from server.sources.cpt.emulator import REFUSED_TOKEN
from tests.integration.test_pas_hl7_and_fhir import msa, send
from tests.support.access import CPT_PRACTITIONER
from tests.support.emulator_control import inject, upstream_requests
from tests.support.fhir_validation import validate_r4
from tests.support.pas_people import HN_SYSTEM, JANE, JANET, NOBODY, adt, pas_record
from tests.support.servers import Emulator, FHIRClient

PAS_SOURCE = "urn:nhs-fhir-facade:pas:reference-pas"
ALLERGIES = [
    {"allergyId": "A1", "substanceText": "Peanut", "status": "A"},
    {"allergyId": "A2", "substanceText": "Latex", "status": "R"},
    {"allergyId": "A3", "substanceText": "Penicillin", "status": "I"},
]
MEDICATIONS = [{"prescriptionId": "M1", "drugText": "Aspirin 75mg", "status": "A"}]


def jane(hn: str, **extra: Any) -> dict[str, Any]:
    return pas_record(hn, JANE, **extra)


def nobody(hn: str, **extra: Any) -> dict[str, Any]:
    return pas_record(hn, NOBODY, **extra)


def janet(hn: str, **extra: Any) -> dict[str, Any]:
    return pas_record(hn, JANET, **extra)


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def outcome_texts(bundle: dict[str, Any]) -> list[str]:
    return [
        i.get("diagnostics", "")
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "outcome"
        for i in e["resource"]["issue"]
    ]


async def register(facade: FHIRClient, body: dict[str, Any]) -> dict[str, Any]:
    status, _, record = await facade.post("/pas/v1/patients", json=body)
    assert status == 201, record
    return record


# --- 1. default search values -------------------------------------------------------


async def test_pas_allergies_default_to_active_like_gp_connects(facade: FHIRClient) -> None:
    await register(facade, jane("H800", allergies=ALLERGIES))
    status, _, bundle = await facade.get("/AllergyIntolerance?patient=pas-H800")
    assert status == 200
    validate_r4(bundle)
    found = matches(bundle)
    assert {a["clinicalStatus"]["coding"][0]["code"] for a in found} == {"active"}
    assert [a["id"] for a in found if a["meta"]["source"] == PAS_SOURCE] == ["pas-H800-A1"]
    assert any(a["meta"]["source"] != PAS_SOURCE for a in found)  # GP Connect's, alongside
    assert any("Only active allergies" in text for text in outcome_texts(bundle))

    async def pas_ids(query: str) -> list[str]:
        status, _, bundle = await facade.get(f"/AllergyIntolerance?patient=pas-H800&{query}")
        assert status == 200, bundle
        validate_r4(bundle)
        return sorted(a["id"] for a in matches(bundle) if a["meta"]["source"] == PAS_SOURCE)

    # Naming clinical-status in any form replaces the default, for both sources.
    assert await pas_ids("clinical-status=resolved") == ["pas-H800-A2"]
    assert await pas_ids("clinical-status=active,inactive") == ["pas-H800-A1", "pas-H800-A3"]
    assert await pas_ids("clinical-status:not=active") == ["pas-H800-A2", "pas-H800-A3"]
    # The same rule through the NHS-number route to the same PAS patient.
    status, _, bundle = await facade.get("/AllergyIntolerance?patient=9000000009")
    assert status == 200
    assert [a["id"] for a in matches(bundle) if a["meta"]["source"] == PAS_SOURCE] == ["pas-H800-A1"]


async def test_pas_only_patient_gets_the_default_and_is_told(facade: FHIRClient) -> None:
    await register(facade, nobody("H801", allergies=ALLERGIES))
    status, _, bundle = await facade.get(f"/AllergyIntolerance?patient:identifier={HN_SYSTEM}|H801")
    assert status == 200
    validate_r4(bundle)
    assert [a["id"] for a in matches(bundle)] == ["pas-H801-A1"]
    assert any("clinical-status=active" in text for text in outcome_texts(bundle))
    status, _, bundle = await facade.get("/AllergyIntolerance?patient=pas-H801&clinical-status=resolved,inactive")
    assert sorted(a["id"] for a in matches(bundle)) == ["pas-H801-A2", "pas-H801-A3"]
    assert not any("clinical-status=active" in text for text in outcome_texts(bundle))
    # The PAS endpoint lists what the FHIR search shows: active unless asked otherwise;
    # the patient record itself still carries every stored allergy.
    status, _, body = await facade.get("/pas/v1/patients/H801/allergies")
    assert status == 200 and [a["allergyId"] for a in body["allergies"]] == ["A1"]
    _, _, record = await facade.get("/pas/v1/patients/H801")
    assert [a["allergyId"] for a in record["allergies"]] == ["A1", "A2", "A3"]


async def test_medication_requests_have_no_default(facade: FHIRClient) -> None:
    """CPT declares no default, so every PAS medication status comes back."""
    await register(
        facade,
        nobody(
            "H802",
            medications=[
                {"prescriptionId": "P1", "drugText": "Aspirin", "status": "A"},
                {"prescriptionId": "P2", "drugText": "Amoxil", "status": "C"},
            ],
        ),
    )
    status, _, bundle = await facade.get("/MedicationRequest?patient=pas-H802")
    assert status == 200 and sorted(m["id"] for m in matches(bundle)) == ["pas-H802-P1", "pas-H802-P2"]
    assert outcome_texts(bundle) == []


# --- 2. subject= names the patient like patient= ------------------------------------------


async def test_medication_request_subject_names_a_pas_patient(facade: FHIRClient) -> None:
    await register(facade, jane("H810", medications=MEDICATIONS))

    async def found(query: str) -> list[tuple[str, str]]:
        status, _, bundle = await facade.get(f"/MedicationRequest?{query}", headers=CPT_PRACTITIONER)
        assert status == 200, (query, bundle)
        validate_r4(bundle)
        return sorted((m["id"], m["subject"].get("reference", "")) for m in matches(bundle))

    expected = await found("patient=pas-H810")
    assert ("pas-H810-M1", "Patient/pas-H810") in expected
    assert any(ref == "Patient/9000000009" for _, ref in expected)
    for query in (
        "subject=pas-H810",
        "subject=Patient/pas-H810",
        f"subject:identifier={HN_SYSTEM}|H810",
        f"subject.identifier={HN_SYSTEM}|H810",
    ):
        assert await found(query) == expected, query
    # The PAS patient traced to an NHS number, so CPT is asked and needs the session.
    status, _, outcome = await facade.get("/MedicationRequest?subject=pas-H810")
    assert status == 400
    validate_r4(outcome)


async def test_subject_for_a_pas_only_patient_and_naming_the_patient_twice(facade: FHIRClient) -> None:
    await register(facade, nobody("H811", medications=MEDICATIONS))
    status, _, bundle = await facade.get("/MedicationRequest?subject=pas-H811&status=active")
    assert status == 200 and [m["id"] for m in matches(bundle)] == ["pas-H811-M1"]
    status, _, bundle = await facade.get("/MedicationRequest?subject=pas-H811&status=completed")
    assert status == 200 and matches(bundle) == []
    status, _, bundle = await facade.get("/MedicationRequest?subject=pas-H999")
    assert status == 200 and matches(bundle) == []
    status, _, outcome = await facade.get("/MedicationRequest?patient=pas-H811&subject=pas-H811")
    assert status == 400 and "once" in outcome["issue"][0]["diagnostics"]
    validate_r4(outcome)


# --- 3. the PAS endpoints: caller context, whole errors, restrictions ------------------------


PAS_CALLER_ID = "8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
MISSING_ID = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"


async def test_pas_endpoints_pass_the_callers_context_to_the_nhs_apis(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    await register(facade, jane("H820", medications=MEDICATIONS))
    before = len((await upstream_requests(http, emulator))["context_headers"])
    status, _, body = await facade.get(
        "/pas/v1/patients/H820/medications",
        headers={**CPT_PRACTITIONER, "X-Request-ID": PAS_CALLER_ID, "X-NHS-User-Token": "a-good-cis2-token"},
    )
    assert status == 200 and {m["source"] for m in body["medications"]} == {"NHS", "PAS"}
    seen = (await upstream_requests(http, emulator))["context_headers"][before:]
    assert seen and all(h.get("x-correlation-id") == PAS_CALLER_ID for h in seen)
    # The caller's bearer token is what CPT judges: a refused one is the caller's 401.
    status, headers, error = await facade.get(
        "/pas/v1/patients/H820/medications", headers={**CPT_PRACTITIONER, "X-NHS-User-Token": REFUSED_TOKEN}
    )
    assert status == 401 and "Bearer" in headers.get("WWW-Authenticate", "")
    assert set(error) == {"errors", "requestId"} and REFUSED_TOKEN not in str(error)


async def test_nhs_failure_is_a_whole_pas_error_never_a_partial_list(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    await register(facade, jane("H821", allergies=ALLERGIES, medications=MEDICATIONS))
    status, _, error = await facade.get("/pas/v1/patients/H821/medications", headers={"X-Request-ID": MISSING_ID})
    assert status == 400 and "medications" not in error
    assert error["requestId"] == MISSING_ID and "nhsd-session-urid" in error["errors"][0]["reason"]
    await inject(http, emulator, path_prefix="/gpconnect", status=503, times=10)
    status, headers, error = await facade.get("/pas/v1/patients/H821/allergies")
    assert status == 503 and "allergies" not in error and error["errors"][0]["field"] is None
    status, _, outcome = await facade.get(
        "/pas/v1/patients/H821/allergies", headers={"Accept": "application/fhir+json"}
    )
    assert status == 503 and outcome["resourceType"] == "OperationOutcome"
    validate_r4(outcome)


def assert_withheld(record: dict[str, Any]) -> None:
    for field in ("address", "phone", "email", "gpPracticeCode"):
        assert field not in record, field


async def test_restricted_patient_writes_never_echo_withheld_fields(facade: FHIRClient) -> None:
    # NHS number supplied (no trace): the restriction is learnt from PDS at the write.
    body = janet(
        "H830",
        nhsNumber="9000000025",
        phone="07700900123",
        gpPracticeCode="Y12345",
        address={"lines": ["1 Secret Lane"], "postcode": "LS2 7AB"},
    )
    record = await register(facade, body)
    assert record["confidentiality"] == "R"
    assert_withheld(record)
    status, headers, record = await facade.request(
        "PUT", "/pas/v1/patients/H830", json={**body, "email": "a@b.org"}, headers={"If-Match": 'W/"1"'}
    )
    assert status == 200 and headers["ETag"] == 'W/"2"' and record["confidentiality"] == "R"
    assert_withheld(record)
    # A patient PDS confirmed unrestricted: the write answer shows what was stored.
    record = await register(
        facade, jane("H831", nhsNumber="9000000009", phone="07700900123", address={"postcode": "ls1 1aa"})
    )
    assert record["confidentiality"] == "U" and record["phone"] == "07700900123"
    assert record["address"] == {"postcode": "LS1 1AA"}
    # One PDS never confirmed (untraceable): withheld, fail closed.
    assert_withheld(await register(facade, nobody("H834", phone="07700900123", address={"postcode": "ls1 1aa"})))


async def test_restriction_survives_updates_that_do_not_mention_it(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    record = await register(facade, janet("H832", phone="07700900123"))
    assert record["nhsNumber"] == "9000000025" and record["confidentiality"] == "R"
    # A whole-record PUT without confidentiality, PDS down meanwhile: still R.
    await inject(http, emulator, path_prefix="/personal-demographics", status=503, times=50)
    changed = janet("H832", nhsNumber="9000000025", phone="07700900999", address={"postcode": "LS2 7AB"})
    status, _, record = await facade.request(
        "PUT", "/pas/v1/patients/H832", json=changed, headers={"If-Match": 'W/"1"'}
    )
    assert status == 200 and record["confidentiality"] == "R"
    assert_withheld(record)
    status, headers, record = await facade.get("/pas/v1/patients/H832")
    assert status == 200 and headers["X-PDS-Refresh"] == "unavailable"
    assert_withheld(record)
    status, _, patient = await facade.get("/Patient/pas-H832")
    assert status == 200 and "address" not in patient and "telecom" not in patient
    validate_r4(patient)


async def test_hl7_updated_restricted_patient_read_back_withheld(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    _, _, ack = await send(
        facade, adt("A04", "PID|1||H833^^^RX1^MR||SMYTHE^JANET||20050616|F|||||07700900123", "PD1|||GP^^Y12345")
    )
    assert msa(ack)[1] == "AA"
    _, _, record = await facade.get("/pas/v1/patients/H833")
    assert record["nhsNumber"] == "9000000025"  # traced: restricted in PDS
    _, _, ack = await send(
        facade,
        adt(
            "A08",
            "PID|1||H833^^^RX1^MR||SMYTHE^JANET||20050616|F|||2 Hidden Road^^York^^YO1 7HH||07700900999",
            control="MSG2",
        ),
    )
    assert msa(ack)[1] == "AA"
    for pds_down in (False, True):
        if pds_down:
            await inject(http, emulator, path_prefix="/personal-demographics", status=503, times=50)
        status, _, record = await facade.get("/pas/v1/patients/H833")
        assert status == 200 and record.get("confidentiality") == "R", (pds_down, record)
        assert_withheld(record)
        status, _, patient = await facade.get("/Patient/pas-H833")
        assert status == 200 and "address" not in patient and "telecom" not in patient, pds_down
        assert "generalPractitioner" not in patient
