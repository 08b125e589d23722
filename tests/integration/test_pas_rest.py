"""The PAS REST side over real sockets: registration with NHS number tracing against the
emulator, PAS-format reads refreshed from PDS, optimistic updates, and PAS errors."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.access import CPT_PRACTITIONER
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator, FHIRClient

PDS_SEARCH = "GET /personal-demographics/FHIR/R4/Patient?"


def patient(hn: str, surname: str, forenames: str, dob: str, sex: str, **extra: Any) -> dict[str, Any]:
    return {"hospitalNumber": hn, "surname": surname, "forenames": forenames, "dateOfBirth": dob, "sex": sex, **extra}


def searches(emulator: Emulator) -> list[str]:
    return [k for k in emulator.state.counts if k.startswith(PDS_SEARCH)]


async def register(facade: FHIRClient, body: Any) -> tuple[int, Any, Any]:
    return await facade.post("/pas/v1/patients", json=body)


async def test_register_without_nhs_number_traces_an_exact_match(facade: FHIRClient, emulator: Emulator) -> None:
    body = patient("H100", "Smith", "Jane", "22/10/2010", "F", address={"postcode": "ls1 6ae"}, ethnicity="A")
    status, headers, record = await register(facade, body)
    assert status == 201
    assert record["nhsNumber"] == "9000000009" and record["nhsNumberStatus"] == "01"
    assert record["address"] == {"postcode": "LS1 6AE"}  # stored canonical
    assert headers["X-NHS-Trace"].startswith("status=01; result=exact-match; stage=exact")
    assert headers["ETag"] == 'W/"1"' and headers["Location"].endswith("/pas/v1/patients/H100")
    assert len(searches(emulator)) == 1 and "_exact-match=true" in searches(emulator)[0]


async def test_two_exact_candidates_are_never_guessed(facade: FHIRClient, emulator: Emulator) -> None:
    status, headers, record = await register(facade, patient("H101", "Jones", "Alex", "01/05/1990", "M"))
    assert status == 201
    assert record["nhsNumberStatus"] == "04" and "nhsNumber" not in record
    assert "result=multiple-matches; stage=exact; candidates=2" in headers["X-NHS-Trace"]
    assert len(searches(emulator)) == 1  # a fuzzy search could only widen the field


async def test_fuzzy_single_confident_match_is_accepted(facade: FHIRClient, emulator: Emulator) -> None:
    body = patient("H102", "Tailor", "Sam", "29/02/1980", "M", address={"postcode": "M1 1AE"})
    status, headers, record = await register(facade, body)
    assert (record["nhsNumber"], record["nhsNumberStatus"]) == ("9000000068", "01")
    assert "result=fuzzy-match; stage=fuzzy; candidates=1; score=0.96" in headers["X-NHS-Trace"]
    assert "_fuzzy-match=true" in searches(emulator)[1]


async def test_fuzzy_low_score_and_multiple_matches_give_04(facade: FHIRClient) -> None:
    _, headers, record = await register(facade, patient("H103", "Tailor", "Samm", "29/02/1980", "M"))
    assert record["nhsNumberStatus"] == "04" and "nhsNumber" not in record
    assert "result=low-score" in headers["X-NHS-Trace"]
    _, headers, record = await register(facade, patient("H104", "Smithe", "Jane", "22/10/2010", "F"))
    assert record["nhsNumberStatus"] == "04" and "result=multiple-matches; stage=fuzzy" in headers["X-NHS-Trace"]


async def test_no_match_gives_04(facade: FHIRClient) -> None:
    _, headers, record = await register(facade, patient("H105", "Nobody", "Known", "01/01/1970", "U"))
    assert record["nhsNumberStatus"] == "04" and "result=no-match" in headers["X-NHS-Trace"]


async def test_supplied_nhs_number_is_not_traced(facade: FHIRClient, emulator: Emulator) -> None:
    status, headers, record = await register(
        facade, patient("H106", "Smith", "Jane", "22/10/2010", "F", nhsNumber="900 000 0009")
    )
    assert status == 201 and record["nhsNumber"] == "9000000009" and record["nhsNumberStatus"] == "02"
    assert "X-NHS-Trace" not in headers and searches(emulator) == []


async def test_pds_down_stores_trace_required(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    await http.post(
        f"{emulator.url}/_control/faults", json={"path_prefix": "/personal-demographics", "status": 503, "times": 10}
    )
    status, headers, record = await register(facade, patient("H107", "Smith", "Jane", "22/10/2010", "F"))
    assert status == 201 and record["nhsNumberStatus"] == "03" and "nhsNumber" not in record
    assert headers["X-NHS-Trace"] == "status=03; result=pds-503"


async def test_bad_record_lists_every_problem_and_stores_nothing(facade: FHIRClient, emulator: Emulator) -> None:
    body = {
        "hospitalNumber": "H108",
        "surname": "Sm1th",
        "dateOfBirth": "31/02/2010",
        "sex": "X",
        "nhsNumber": "9000000000",
        "address": {"postcode": "nowhere"},
        "favouriteColour": "blue",
        "allergies": [{"allergyId": "A1", "status": "Q", "severity": "SEV"}],
    }
    status, headers, error = await register(facade, body)
    assert status == 422 and headers["Content-Type"] == "application/json; charset=utf-8"
    assert error["requestId"] == headers["X-Request-ID"]
    assert {(e["field"], e["value"]) for e in error["errors"]} == {
        ("favouriteColour", "blue"),
        ("surname", "Sm1th"),
        ("dateOfBirth", "31/02/2010"),
        ("sex", "X"),
        ("nhsNumber", "9000000000"),
        ("address.postcode", "nowhere"),
        ("allergies[0].substanceText", None),
        ("allergies[0].status", "Q"),
        ("allergies[0].severity", "SEV"),
    }
    assert all(e["reason"] for e in error["errors"])
    assert searches(emulator) == []
    status, _, _ = await facade.get("/pas/v1/patients/H108")
    assert status == 404


async def test_fhir_callers_get_an_operation_outcome_per_problem(facade: FHIRClient) -> None:
    status, headers, outcome = await facade.post(
        "/pas/v1/patients", headers={"Accept": "application/fhir+json"}, json={"hospitalNumber": "H109", "sex": "X"}
    )
    assert status == 422 and headers["Content-Type"].startswith("application/fhir+json")
    validate_r4(outcome)
    assert sorted(i["expression"][0] for i in outcome["issue"]) == ["dateOfBirth", "sex", "surname"]


async def test_request_errors(facade: FHIRClient) -> None:
    status, _, error = await facade.post(
        "/pas/v1/patients", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and error["errors"][0]["reason"] == "the body is not valid JSON"
    status, _, _ = await facade.post("/pas/v1/patients", data=b"x", headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _, error = await facade.get("/pas/v1/patients/not%20valid")
    assert status == 400 and error["errors"][0]["field"] == "hospitalNumber"
    status, _, error = await facade.get("/pas/v1/nowhere")
    assert status == 404 and error["errors"][0]["reason"] == "no PAS endpoint at this path"
    status, _, _ = await facade.request("DELETE", "/pas/v1/patients/H1")
    assert status == 405
    await register(facade, patient("H110", "Nobody", "Known", "01/01/1970", "U"))
    status, _, error = await register(facade, patient("H110", "Nobody", "Known", "01/01/1970", "U"))
    assert status == 409 and error["errors"][0]["field"] == "hospitalNumber"


async def test_read_is_refreshed_from_pds_keeping_pas_only_fields(facade: FHIRClient) -> None:
    await register(
        facade,
        patient(
            "H111",
            "Smith",
            "Jane",
            "22/10/2010",
            "F",
            ethnicity="A",
            phone="07700 900123",
            address={"lines": ["9 Old Road"], "postcode": "LS1 6AE"},
            allergies=[{"allergyId": "A1", "substanceText": "Peanut", "status": "A"}],
        ),
    )
    status, headers, record = await facade.get("/pas/v1/patients/H111")
    assert status == 200 and headers["X-PDS-Refresh"] == "refreshed" and headers["ETag"] == 'W/"1"'
    assert record["forenames"] == "Jane Anne" and record["title"] == "Mrs"  # PDS wins
    assert record["address"]["lines"][0] == "1 Trevelyan Square" and record["phone"] == "01632960587"
    assert record["ethnicity"] == "A"  # PAS only: kept
    assert record["allergies"] == [{"allergyId": "A1", "substanceText": "Peanut", "status": "A"}]


async def test_restricted_patient_is_not_back_filled_from_the_pas_copy(facade: FHIRClient) -> None:
    body = patient(
        "H112",
        "Smythe",
        "Janet",
        "16/06/2005",
        "F",
        nhsNumber="9000000025",
        phone="07700900123",
        address={"lines": ["1 Secret Lane"], "postcode": "LS2 7AB"},
        gpPracticeCode="Y12345",
    )
    await register(facade, body)
    status, headers, record = await facade.get("/pas/v1/patients/H112")
    assert status == 200 and headers["X-PDS-Refresh"] == "refreshed"
    assert record["confidentiality"] == "R"
    for withheld in ("address", "phone", "gpPracticeCode"):
        assert withheld not in record
    status, _, fhir = await facade.get("/Patient/pas-H112")
    assert status == 200 and "address" not in fhir and "telecom" not in fhir
    validate_r4(fhir)


async def test_traced_restricted_patient_keeps_the_restriction_when_pds_is_down(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    _, _, record = await register(facade, patient("H113", "Smythe", "Janet", "16/06/2005", "F", phone="07700900123"))
    assert record["nhsNumber"] == "9000000025" and record["confidentiality"] == "R"
    await http.post(
        f"{emulator.url}/_control/faults", json={"path_prefix": "/personal-demographics", "status": 503, "times": 5}
    )
    status, headers, record = await facade.get("/pas/v1/patients/H113")
    assert status == 200 and headers["X-PDS-Refresh"] == "unavailable" and "phone" not in record


async def test_put_with_if_match(facade: FHIRClient) -> None:
    body = patient("H114", "Nobody", "Known", "01/01/1970", "U", address={"postcode": "LS1 1AA"})
    await register(facade, body)
    changed = {**body, "address": {"postcode": "M1 1AE"}, "nhsNumberStatus": "04"}
    status, _, error = await facade.request("PUT", "/pas/v1/patients/H114", json=changed)
    assert status == 428 and "If-Match" in error["errors"][0]["reason"]
    status, headers, record = await facade.request(
        "PUT", "/pas/v1/patients/H114", json=changed, headers={"If-Match": 'W/"1"'}
    )
    # Never confirmed by PDS (no NHS number): the address is withheld from the answer (fail closed).
    assert status == 200 and headers["ETag"] == 'W/"2"' and "address" not in record
    status, headers, error = await facade.request(
        "PUT", "/pas/v1/patients/H114", json=changed, headers={"If-Match": 'W/"1"'}
    )
    assert status == 412 and headers["ETag"] == 'W/"2"'
    status, _, _ = await facade.request("PUT", "/pas/v1/patients/H114", json=changed, headers={"If-Match": "*"})
    assert status == 412
    status, _, error = await facade.request(
        "PUT", "/pas/v1/patients/H114", json={**changed, "hospitalNumber": "H9"}, headers={"If-Match": 'W/"2"'}
    )
    assert status == 422 and error["errors"][0]["field"] == "hospitalNumber"
    status, _, _ = await facade.request(
        "PUT", "/pas/v1/patients/H999", json={**changed, "hospitalNumber": "H999"}, headers={"If-Match": 'W/"1"'}
    )
    assert status == 404
    _, headers, record = await facade.get("/pas/v1/patients/H114")
    assert headers["ETag"] == 'W/"2"' and "address" not in record  # stored, withheld until PDS confirms


async def test_related_records_in_pas_format(facade: FHIRClient) -> None:
    await register(
        facade,
        patient(
            "H115",
            "Smith",
            "Jane",
            "22/10/2010",
            "F",
            allergies=[
                {
                    "allergyId": "A1",
                    "substanceCode": "372687004",
                    "substanceText": "Amoxicillin",
                    "status": "A",
                    "reaction": "Rash",
                    "severity": "MILD",
                }
            ],
            medications=[
                {
                    "prescriptionId": "M1",
                    "drugText": "Aspirin 75mg",
                    "status": "A",
                    "route": "PO",
                    "startDate": "01/01/2026",
                }
            ],
        ),
    )
    status, _, body = await facade.get("/pas/v1/patients/H115/allergies")
    assert status == 200 and body["hospitalNumber"] == "H115"
    # H115 traces to 9000000009: GP Connect's allergies come back in PAS format, and the PAS
    # amoxicillin entry (same coded substance as the NHS record) is not listed twice.
    allergies = body["allergies"]
    assert [a["substanceCode"] for a in allergies].count("372687004") == 1
    assert {a["source"] for a in allergies} == {"NHS"} and len(allergies) == 3
    status, _, body = await facade.get("/pas/v1/patients/H115/medications", headers=CPT_PRACTITIONER)
    assert status == 200
    pas_meds = [m for m in body["medications"] if m["source"] == "PAS"]
    assert pas_meds == [
        {
            "prescriptionId": "M1",
            "drugText": "Aspirin 75mg",
            "route": "PO",
            "startDate": "01/01/2026",
            "status": "A",
            "source": "PAS",
        }
    ]
    assert any(m["source"] == "NHS" for m in body["medications"])
    status, _, body = await facade.get("/pas/v1/patients/H115/referrals")
    assert status == 200 and "000000070000" in {r.get("ubrn") for r in body["referrals"]}
    status, _, _ = await facade.get("/pas/v1/patients/H999/allergies")
    assert status == 404
    status, _, _ = await facade.get("/pas/v1/patients/H115/appointments")
    assert status == 404
