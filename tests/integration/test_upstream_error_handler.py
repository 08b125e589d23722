"""An NHS failure escapes the providers as an UpstreamError and one registered handler renders
it (server/nhs/error_handler.py; the PAS sub-app has its own): from every NHS source the
client still gets the mapped status, its Retry-After and a valid OperationOutcome (or the PAS
error shape), and the audit trail records that status, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration.test_pas_consistency import jane, register
from tests.support.access import CPT, audit_events, by_request_id
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import PDS_PREFIX, inject
from tests.support.servers import Emulator, FHIRClient, running_facade

UBRN = "https://fhir.nhs.uk/Id/UBRN"
ERS_USER = {
    "NHSD-eRS-Business-Function": "REFERRING_CLINICIAN",
    "NHSD-End-User-Organisation-ODS": "R69",
    "X-NHS-User-Token": "caller-cis2-token",
}

SOURCES = [
    pytest.param("/Patient/9000000009", PDS_PREFIX, {}, id="PDS read"),
    pytest.param("/Patient?family=Smith&birthdate=2010-10-22", PDS_PREFIX, {}, id="PDS search"),
    pytest.param("/AllergyIntolerance?patient=9000000009", "/gpconnect", {}, id="GP Connect"),
    pytest.param("/MedicationRequest?patient=9000000009", "/clinical-prescription-tracker", CPT, id="CPT"),
    pytest.param("/ServiceRequest?patient=9000000009", "/booking-and-referral", {}, id="BaRS"),
    pytest.param(f"/ServiceRequest?identifier={UBRN}|000000070000", "/referrals/FHIR/R4", ERS_USER, id="e-RS"),
]


@pytest.fixture
async def one_try(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[CheckedClient]:
    """No retries, so a fault reaches the client at once (retries have their own tests)."""
    async with running_facade(emulator, upstream_retry_attempts=1) as url:
        yield CheckedClient(url, http)


async def audited_status(fhir: CheckedClient, request_id: str) -> tuple[str, str]:
    [event] = by_request_id(await audit_events(fhir), request_id)
    return event["outcome"], event["outcomeDesc"]


@pytest.mark.parametrize("path, prefix, headers", SOURCES)
async def test_an_outage_of_each_nhs_source_is_a_503_with_retry_after_audited_as_503(
    one_try: CheckedClient,
    emulator: Emulator,
    http: aiohttp.ClientSession,
    path: str,
    prefix: str,
    headers: dict[str, str],
) -> None:
    await inject(http, emulator, path_prefix=prefix, status=503, retry_after="7", times=-1)
    request_id = str(uuid.uuid4())
    answer = await one_try.get(path, headers={**headers, "X-Request-ID": request_id})  # checks the outcome is R4
    assert answer.status == 503, answer.body
    assert answer.headers["Retry-After"] == "7"
    assert answer.issue["code"] == "transient"
    outcome, description = await audited_status(one_try, request_id)
    assert outcome == "8" and description.startswith("HTTP 503"), description


@pytest.mark.parametrize("path, prefix, headers", SOURCES)
async def test_an_nhs_source_failing_with_500_is_a_502_audited_as_502(
    one_try: CheckedClient,
    emulator: Emulator,
    http: aiohttp.ClientSession,
    path: str,
    prefix: str,
    headers: dict[str, str],
) -> None:
    await inject(http, emulator, path_prefix=prefix, status=500, times=-1)
    request_id = str(uuid.uuid4())
    answer = await one_try.get(path, headers={**headers, "X-Request-ID": request_id})
    assert answer.status == 502, answer.body
    assert "Retry-After" not in answer.headers
    outcome, description = await audited_status(one_try, request_id)
    assert outcome == "8" and description.startswith("HTTP 502"), description


async def test_an_nhs_outage_behind_a_pas_endpoint_is_a_pas_503_audited_as_503(
    one_try: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    pas = FHIRClient(one_try.base_url, http)
    await register(pas, jane("H901"))
    await inject(http, emulator, path_prefix="/gpconnect", status=503, retry_after="7", times=-1)
    request_id = str(uuid.uuid4())
    status, headers, error = await pas.get("/pas/v1/patients/H901/allergies", headers={"X-Request-ID": request_id})
    assert status == 503 and headers["Retry-After"] == "7"
    assert set(error) == {"errors", "requestId"} and error["requestId"] == request_id
    outcome, description = await audited_status(one_try, request_id)
    assert outcome == "8" and description.startswith("HTTP 503"), description
