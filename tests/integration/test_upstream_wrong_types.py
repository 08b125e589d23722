"""End to end: an NHS answer of the right outline with wrong value types (injected as the
emulator's answer through /_control/faults) reaches the client as a 502
OperationOutcome, never a 500. One real NHS example per connector, one node replaced by
a value of another JSON type at a place that used to crash the conversion."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.support.emulator_control import PDS_PREFIX, inject
from tests.support.fhir_validation import validate_r4
from tests.support.json_mutation import replaced
from tests.support.servers import Emulator, FHIRClient, running_facade
from tests.support.shared import example_files

CPT_HEADERS = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
}
ERS_USER = {"NHSD-eRS-Business-Function": "REFERRING_CLINICIAN", "NHSD-End-User-Organisation-ODS": "R69"}


def _example(pattern: str) -> Any:
    return json.loads(example_files(pattern)[0].read_text())


def _gpc_case() -> tuple[str, Any]:
    record = _example("gpconnect/allergies_response1_STU3.json")
    index, patient = next(
        (i, e["resource"]) for i, e in enumerate(record["entry"]) if e["resource"]["resourceType"] == "Patient"
    )
    nhs = next(i["value"] for i in patient["identifier"] if i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
    return nhs, replaced(record, ("entry", index, "resource", "identifier"), 1.5)


GPC_NHS, GPC_BODY = _gpc_case()
ERS3 = _example("ers/stu3_retrieveReferralRequest_responses_BookedDBS.json")

CASES = [
    pytest.param(
        PDS_PREFIX,
        "/Patient/9000000009",
        {},
        replaced(_example("pds/Patient_9000000009.json"), ("name",), 5),
        {},
        id="pds-read",
    ),
    pytest.param(
        PDS_PREFIX,
        "/Patient?family=Smith&birthdate=2010-10-22",
        {},
        replaced(_example("captured/pds_search_wildcard_two_matches.json"), ("entry",), 1.5),
        {},
        id="pds-search",
    ),
    pytest.param(
        "/clinical-prescription-tracker",
        "/MedicationRequest?patient=9000000009",
        CPT_HEADERS,
        replaced(
            _example("eps-tracker/RequestGroup_search_by_nhsNumber_200_WithSingleAcute.json"),
            ("entry", 1, "resource", "extension"),
            5,
        ),
        {},
        id="cpt-search",
    ),
    pytest.param(
        "/referrals/FHIR/R4",
        "/ServiceRequest?identifier=https://fhir.nhs.uk/Id/UBRN|000000070002",
        ERS_USER,
        replaced(_example("ers/ServiceRequest_search_ResponseExampleReferralAndAdvice.json"), ("entry",), 7),
        {},
        id="ers-r4-search",
    ),
    pytest.param(
        "/referrals/FHIR/STU3",
        f"/ServiceRequest/ers3.{ERS3['id']}",
        {},
        replaced(ERS3, ("supportingInfo",), 5),
        {"ers_access_mode": "application-restricted"},
        id="ers-stu3-read",
    ),
    pytest.param("/gpconnect", f"/AllergyIntolerance?patient={GPC_NHS}", {}, GPC_BODY, {}, id="gpconnect"),
]


@pytest.mark.parametrize("prefix, path, headers, body, settings", CASES)
async def test_wrong_types_upstream_are_502(
    emulator: Emulator,
    http: aiohttp.ClientSession,
    prefix: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    settings: dict[str, Any],
) -> None:
    await inject(http, emulator, status=200, body=body, times=-1, path_prefix=prefix)
    async with running_facade(emulator, upstream_retry_attempts=1, **settings) as url:
        status, _, answer = await FHIRClient(url, http).get(path, headers=headers)
    assert status == 502, (status, answer)
    assert answer["resourceType"] == "OperationOutcome"
    validate_r4(answer)
    text = json.dumps(answer)
    assert "unexpected types" in text or "not valid R4" in text, text
    assert "Traceback" not in text
