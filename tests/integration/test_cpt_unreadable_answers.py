"""An answer from the Prescription Tracker the façade cannot read is a 502, never an
empty medication list (issue 10, defect 4), over real sockets: test -> façade -> CPT
emulator, the odd answers injected into the emulator (server/sandbox/faults.py).

A medication list that silently lacks prescriptions is a clinical-safety defect; an empty
but well-formed CPT answer is still an empty searchset.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from server.sources.cpt.emulator import detail_bundle
from server.sources.cpt.emulator_data import PRESCRIPTIONS
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import inject
from tests.support.servers import Emulator
from tests.support.shared import example_files

H = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
}
CPT = "/clinical-prescription-tracker"
ACUTE = "A1F3C2-A83008-4B7E1K"
ACUTE_ITEM = f"{ACUTE}.6F2D1A44-0B5E-4C1B-9E3A-1D2C3B4A5F60"
ORDER = "https://fhir.nhs.uk/Id/prescription-order-number"


def _nested_bundle_of_medication_requests() -> dict[str, Any]:
    """NHS's own shape for a patient's prescriptions elsewhere (Prescriptions for
    Patients, and the CPT sandbox): a searchset of collection Bundles of MedicationRequests."""
    (path,) = example_files("pfp/GetMyPrescriptions_success.json")
    body: dict[str, Any] = json.loads(path.read_text())
    return body


def _medication_requests_without_request_group() -> dict[str, Any]:
    mr = {
        "resourceType": "MedicationRequest",
        "id": "mr-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Amoxicillin 250mg capsules"},
        "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}},
    }
    return {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [{"resource": mr}]}


def _details_of(prescription_id: str) -> dict[str, Any]:
    rx = next(p for p in PRESCRIPTIONS if p.id == prescription_id)
    return detail_bundle(rx, rx.issues[-1])


async def _assert_502(answer_status: int, body: dict[str, Any]) -> None:
    assert answer_status == 502, body
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] in ("error", "fatal")


@pytest.mark.parametrize(
    "search_answer",
    [_nested_bundle_of_medication_requests, _medication_requests_without_request_group],
    ids=["nested-bundles", "medication-requests"],
)
async def test_a_search_answer_holding_no_request_group_is_502_not_an_empty_list(
    fhir: CheckedClient, http: aiohttp.ClientSession, emulator: Emulator, search_answer: Any
) -> None:
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup", status=200, body=search_answer())
    answer = await fhir.get("/MedicationRequest?patient=9000000009", headers=H)
    await _assert_502(answer.status, answer.body)
    assert "RequestGroup" in answer.issue["diagnostics"]


@pytest.mark.parametrize(
    "empty",
    [
        {"resourceType": "Bundle", "type": "searchset", "total": 0},
        {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []},
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 0,
            "entry": [
                {
                    "search": {"mode": "include"},
                    "resource": {
                        "resourceType": "Patient",
                        "id": "p-1",
                        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
                    },
                }
            ],
        },
    ],
    ids=["no-entry", "empty-entry", "patient-only"],
)
async def test_an_empty_well_formed_search_answer_is_an_empty_searchset(
    fhir: CheckedClient, http: aiohttp.ClientSession, emulator: Emulator, empty: dict[str, Any]
) -> None:
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup", status=200, body=empty)
    answer = await fhir.get("/MedicationRequest?patient=9000000009", headers=H)
    assert answer.status == 200, answer.body
    assert answer.body["resourceType"] == "Bundle" and answer.body["total"] == 0
    assert not [e for e in answer.body.get("entry", []) if e["search"]["mode"] == "match"]


async def test_details_of_another_prescription_are_refused_on_a_search(
    fhir: CheckedClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    other = _details_of("B7C21D-A83008-9D44E+")
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup/{ACUTE}", status=200, body=other)
    answer = await fhir.get("/MedicationRequest?patient=9000000009", headers=H)
    await _assert_502(answer.status, answer.body)
    assert "another prescription" in answer.issue["diagnostics"]


@pytest.mark.parametrize(
    "path",
    [f"/MedicationRequest/{ACUTE_ITEM}", f"/MedicationRequest?identifier={ORDER}|{ACUTE}"],
    ids=["read", "search-by-prescription-id"],
)
async def test_details_of_another_prescription_are_refused_on_a_read_or_id_search(
    fhir: CheckedClient, http: aiohttp.ClientSession, emulator: Emulator, path: str
) -> None:
    other = _details_of("B7C21D-A83008-9D44E+")
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup/{ACUTE}", status=200, body=other)
    answer = await fhir.get(path, headers={**H, "Cache-Control": "no-cache"})
    await _assert_502(answer.status, answer.body)


async def test_details_holding_no_line_item_are_502(
    fhir: CheckedClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    details = _details_of(ACUTE)
    details["entry"] = [e for e in details["entry"] if e["resource"]["resourceType"] != "MedicationRequest"]
    await inject(http, emulator, path_prefix=f"{CPT}/RequestGroup/{ACUTE}", status=200, body=details)
    answer = await fhir.get("/MedicationRequest?patient=9000000009", headers=H)
    await _assert_502(answer.status, answer.body)
