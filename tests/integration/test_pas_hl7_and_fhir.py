"""HL7 v2 ADT intake and PAS records on the FHIR side, over real sockets."""

from __future__ import annotations

import aiohttp

from tests.support.access import CPT_PRACTITIONER
from tests.support.emulator_control import inject
from tests.support.fhir_validation import validate_r4
from tests.support.pas_people import HN_SYSTEM, adt
from tests.support.servers import Emulator, FHIRClient
from tests.support.tokens import bearer


async def send(facade: FHIRClient, body: bytes) -> tuple[int, str, list[list[str]]]:
    async with facade.session.post(
        facade.base_url + "/pas/v1/hl7", data=body, headers={"Content-Type": "application/hl7-v2", **bearer()}
    ) as resp:
        text = await resp.text()
        segments = [line.split("|") for line in text.split("\r") if line]
        return resp.status, resp.headers["Content-Type"], segments


def msa(segments: list[list[str]]) -> list[str]:
    return next(s for s in segments if s[0] == "MSA")


def errs(segments: list[list[str]]) -> list[list[str]]:
    return [s for s in segments if s[0] == "ERR"]


async def test_a04_registers_and_fhir_identifier_search_finds_the_patient(facade: FHIRClient) -> None:
    status, ctype, ack = await send(
        facade,
        adt(
            "A04",
            "PID|1||H200^^^RX1^MR||TAYLOR^SAM||19800229|M|||10 Piccadilly^^Manchester^^M1 1AE||07700 900123",
            "PD1|||GP PRACTICE^^Y23456",
            "PV1|1|O",
            control="CTRL42",
        ),
    )
    assert status == 200 and ctype.startswith("application/hl7-v2")
    assert ack[0][8] == "ACK^A04^ACK" and msa(ack)[1:3] == ["AA", "CTRL42"] and errs(ack) == []
    status, _, bundle = await facade.get(f"/Patient?identifier={HN_SYSTEM}|H200")
    assert status == 200 and bundle["total"] == 1
    validate_r4(bundle)
    found = bundle["entry"][0]["resource"]
    assert found["id"] == "pas-H200"
    assert {"system": HN_SYSTEM, "value": "H200"} in found["identifier"]
    nhs = next(i for i in found["identifier"] if i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
    assert nhs["value"] == "9000000068"  # traced: PDS compares names case-insensitively
    status, _, read = await facade.get("/Patient/pas-H200")
    assert status == 200 and read["id"] == "pas-H200"
    validate_r4(read)


async def test_a08_updates_only_the_fields_it_carries(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    # Jane (9000000009) is confirmed unrestricted by PDS at each write, so her PAS copy is
    # shown while PDS is down (a record PDS never confirmed would have its address withheld).
    pid = "PID|1||H201^^^RX1^MR~9000000009^^^NHS^NH||SMITH^JANE||20101022|F|||"
    await send(facade, adt("A04", pid + "1 Old Street^^Leeds^^LS1 1AA||01132000000"))
    status, _, ack = await send(facade, adt("A08", pid + "2 New Street^^York^^YO1 7HH"))
    assert msa(ack)[1] == "AA"
    await inject(http, emulator, status=503, times=50)
    status, headers, record = await facade.get("/pas/v1/patients/H201")
    assert status == 200 and headers["ETag"] == 'W/"2"' and headers["X-PDS-Refresh"] == "unavailable"
    assert record["address"] == {"lines": ["2 New Street", "York"], "postcode": "YO1 7HH"}
    assert record["phone"] == "01132000000"  # not in the A08: unchanged
    assert record["nhsNumberStatus"] == "02"


async def test_a40_merges_and_the_old_number_leads_to_the_survivor(facade: FHIRClient) -> None:
    for hn in ("H301", "H302"):
        await send(facade, adt("A04", f"PID|1||{hn}^^^RX1^MR||NOBODY^KNOWN||19700101|U"))
    status, _, ack = await send(
        facade, adt("A40", "PID|1||H301^^^RX1^MR||NOBODY^KNOWN||19700101|U", "MRG|H302^^^RX1^MR")
    )
    assert msa(ack)[1] == "AA"
    status, _, record = await facade.get("/pas/v1/patients/H302")
    assert status == 200 and record["hospitalNumber"] == "H301"
    status, headers, fhir = await facade.get("/Patient/pas-H302")
    assert status == 200 and fhir["id"] == "pas-H301" and headers["Content-Location"].endswith("/Patient/pas-H301")
    status, _, ack = await send(
        facade, adt("A40", "PID|1||H301^^^RX1^MR||NOBODY^KNOWN||19700101|U", "MRG|H999^^^RX1^MR")
    )
    assert msa(ack)[1] == "AE" and errs(ack)[0][3].startswith("204^")
    status, _, ack = await send(facade, adt("A40", "PID|1||H301^^^RX1^MR||NOBODY^KNOWN||19700101|U"))
    assert msa(ack)[1] == "AE" and errs(ack)[0][2] == "MRG^1^1"


async def test_bad_data_gets_ae_naming_each_field_and_stores_nothing(facade: FHIRClient) -> None:
    status, _, ack = await send(facade, adt("A04", "PID|1||H400^^^RX1^MR~9000000000^^^NHS^NH||SMITH^JANE||20103122|X"))
    assert status == 200 and msa(ack)[1] == "AE"
    assert sorted((e[2], e[3].split("^")[0]) for e in errs(ack)) == [
        ("PID^1^3", "102"),
        ("PID^1^7^1^1", "102"),
        ("PID^1^8^1^1", "103"),
    ]
    status, _, _ = await facade.get("/pas/v1/patients/H400")
    assert status == 404
    status, _, ack = await send(facade, adt("A04", "PID|1||||SMITH^JANE||20101022|F"))
    assert msa(ack)[1] == "AE" and errs(ack)[0][3].startswith("101^")


async def test_malformed_and_unsupported_messages_get_ar_never_500(facade: FHIRClient) -> None:
    for body in (b"garbage", b"", b"\xff\xfe", b"MSH|", b"MSH|^~\\&|A|B\rPID|1"):
        status, _, ack = await send(facade, body)
        assert status == 200 and msa(ack)[1] == "AR", body
    status, _, ack = await send(facade, adt("A01", "PID|1||H500^^^RX1^MR||SMITH^JANE||20101022|F"))
    assert msa(ack)[1] == "AR" and errs(ack)[0][3].startswith("201^")
    status, _, ack = await send(facade, b"MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101||ORU^R01|C1|P|2.4\rPID|1\r")
    assert msa(ack)[1] == "AR" and errs(ack)[0][3].startswith("200^")
    status, _, ack = await send(facade, adt("A04", "PV1|1|O"))
    assert msa(ack)[1] == "AR"


async def test_capability_statement_shows_the_hospital_number_system(facade: FHIRClient) -> None:
    status, _, statement = await facade.get("/metadata")
    assert status == 200
    validate_r4(statement)
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    identifier = next(p for p in resources["Patient"]["searchParam"] if p["name"] == "identifier")
    assert HN_SYSTEM in identifier["documentation"] and "nhs-number" in identifier["documentation"]
    assert "patient" in {p["name"] for p in resources["AllergyIntolerance"]["searchParam"]}


async def test_pas_allergies_and_medications_on_the_fhir_side(facade: FHIRClient) -> None:
    await facade.post(
        "/pas/v1/patients",
        json={
            "hospitalNumber": "H600",
            "surname": "Smith",
            "forenames": "Jane",
            "dateOfBirth": "22/10/2010",
            "sex": "F",
            "allergies": [{"allergyId": "A1", "substanceText": "Peanut", "status": "A"}],
            "medications": [{"prescriptionId": "M1", "drugText": "Aspirin", "status": "A"}],
        },
    )
    for query in (
        "patient=pas-H600",
        "patient=9000000009",
        f"patient:identifier={HN_SYSTEM}|H600",
        "patient.identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009",
    ):
        status, _, bundle = await facade.get(f"/AllergyIntolerance?{query}")
        validate_r4(bundle)
        # H600 traces to 9000000009: GP Connect's three allergies come alongside the PAS one.
        assert status == 200 and bundle["total"] == 4, query
        allergies = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
        pas = [a for a in allergies if a["meta"]["source"] == "urn:nhs-fhir-facade:pas:reference-pas"]
        assert len(pas) == 1 and pas[0]["patient"] == {"reference": "Patient/pas-H600"}
        nhs = [a for a in allergies if a not in pas]
        assert len(nhs) == 3 and all(a["patient"]["reference"] == "Patient/9000000009" for a in nhs)
        assert all(a["meta"].get("source") for a in nhs)
    status, _, read = await facade.get("/AllergyIntolerance/pas-H600-A1")
    assert status == 200 and read["id"] == "pas-H600-A1"
    # H600 traces to an NHS number, so the Prescription Tracker is asked too: it needs the
    # caller's NHS session headers; without them the whole search is a 400, not a partial list.
    status, _, _ = await facade.get("/MedicationRequest?patient=pas-H600")
    assert status == 400
    status, _, bundle = await facade.get("/MedicationRequest?patient=pas-H600", headers=CPT_PRACTITIONER)
    assert status == 200
    validate_r4(bundle)
    subjects = [e["resource"]["subject"].get("reference") for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert "Patient/pas-H600" in subjects and "Patient/9000000009" in subjects
    status, _, _ = await facade.get("/AllergyIntolerance/pas-H600-A9")
    assert status == 404
    status, _, outcome = await facade.get("/AllergyIntolerance?code=1")
    assert status == 400 and "patient" in outcome["issue"][0]["diagnostics"]


async def test_search_parameters_filter_pas_recorded_allergies_and_medications(facade: FHIRClient) -> None:
    status, _, _ = await facade.post(
        "/pas/v1/patients",
        json={
            "hospitalNumber": "H400",
            "surname": "Nobody",
            "forenames": "Known",
            "dateOfBirth": "01/01/1970",
            "sex": "U",
            "allergies": [
                {"allergyId": "A1", "substanceText": "Peanut", "status": "A", "recordedDate": "01/03/2024"},
                {"allergyId": "A2", "substanceText": "Latex", "status": "R", "recordedDate": "01/03/2019"},
            ],
            "medications": [
                {"prescriptionId": "P1", "drugText": "Aspirin", "status": "A"},
                {"prescriptionId": "P2", "drugText": "Amoxicillin", "status": "C"},
            ],
        },
    )
    assert status == 201

    async def ids(query: str) -> list[str]:
        status, _, bundle = await facade.get(query)
        assert status == 200, bundle
        validate_r4(bundle)
        return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]

    assert await ids("/AllergyIntolerance?patient=pas-H400&clinical-status=resolved") == ["pas-H400-A2"]
    assert await ids("/AllergyIntolerance?patient=pas-H400&date=ge2024-01-01") == ["pas-H400-A1"]
    assert await ids("/AllergyIntolerance?patient=pas-H400&category=food") == []
    assert await ids("/MedicationRequest?patient=pas-H400&status=completed") == ["pas-H400-P2"]
    assert await ids("/MedicationRequest?patient=pas-H400&status:not=completed&intent=order") == ["pas-H400-P1"]
    assert await ids("/MedicationRequest?patient=pas-H400&authoredon=ge2020") == []  # PAS records carry none


async def test_concurrent_a04s_for_a_new_patient_both_apply(facade: FHIRClient, emulator) -> None:
    """Two registrations of the same new hospital number arrive together; both trace (a
    slow PDS round trip), one registers first. HL7 carries no version, so the other is
    applied as an update: both senders get AA, never an error ACK for a race."""
    import asyncio

    async with facade.session.post(
        f"{emulator.url}/_control/faults", json={"path_prefix": "/personal-demographics", "delay": 0.3, "times": -1}
    ) as resp:
        assert resp.status == 200
    first = adt(
        "A04",
        "PID|1||H700^^^RX1^MR||TAYLOR^SAM||19800229|M|||10 Piccadilly^^Manchester^^M1 1AE||07700 900123",
        control="C1",
    )
    second = adt(
        "A04",
        "PID|1||H700^^^RX1^MR||TAYLOR^SAM||19800229|M|||10 Piccadilly^^Manchester^^M1 1AE||07700 900456",
        control="C2",
    )
    results = await asyncio.gather(send(facade, first), send(facade, second))
    assert [msa(ack)[1] for _, _, ack in results] == ["AA", "AA"]
    status, _, record = await facade.get("/pas/v1/patients/H700")
    assert status == 200 and record["phone"] in ("07700900123", "07700900456")
