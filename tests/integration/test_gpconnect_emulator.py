"""The GP Connect emulator enforces what a provider behind SSP enforces (real sockets)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from server.providers.base import RequestContext
from server.sources.gpconnect.client import (
    OPERATION_PATH,
    GPConnectConfig,
    request_headers,
    structured_record_parameters,
)
from server.sources.gpconnect.consumer_jwt import Requester
from tests.support.servers import Emulator

TRACE = "6a1c7c2e-3a64-4a4e-9d4c-5d0e4f7b1a00"
CONFIG = GPConnectConfig(
    "200000000001",
    "200000000002",
    Requester("A11111", "Test Trust", "111111111111", "222222222222", "Facade", "System"),
    issuer="https://facade.example",
    sandbox=True,
)  # no principal: the sandbox practitioner


def good_headers(emulator: Emulator) -> dict[str, str]:
    ctx = RequestContext(request_id="r", base_url="b")
    return {
        **request_headers(CONFIG, emulator.gpconnect_url, ctx, now=1_700_000_000, trace_id=TRACE),
        "Content-Type": "application/fhir+json",
        "Accept": "application/fhir+json",
    }


async def post(http: aiohttp.ClientSession, emulator: Emulator, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(f"{emulator.gpconnect_url}/{OPERATION_PATH}", data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def code_of(body: dict[str, Any]) -> str | None:
    details = body["issue"][0].get("details")
    return details["coding"][0]["code"] if details else None


async def test_valid_request_gets_an_stu3_collection(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    status, body = await post(
        http, emulator, structured_record_parameters("9000000009", include_resolved=True), good_headers(emulator)
    )
    assert status == 200 and body["type"] == "collection"
    titles = [e["resource"]["title"] for e in body["entry"] if e["resource"]["resourceType"] == "List"]
    assert titles == ["Active Allergies", "Ended allergies"]


def _params(**overrides: Any) -> dict[str, Any]:
    body = structured_record_parameters("9000000009", include_resolved=False)
    ident = body["parameter"][0]["valueIdentifier"]
    ident.update(overrides.pop("identifier", {}))
    if "parts" in overrides:
        body["parameter"][1]["part"] = overrides.pop("parts")
    if "extra" in overrides:
        body["parameter"].append(overrides.pop("extra"))
    return body


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"resourceType": "Bundle"}, 422, "INVALID_RESOURCE"),
        (b"not json", 400, "BAD_REQUEST"),
        (_params(identifier={"system": "http://other"}), 400, "INVALID_IDENTIFIER_SYSTEM"),
        (_params(identifier={"value": "9000000000"}), 400, "INVALID_NHS_NUMBER"),
        (_params(parts=[]), 422, "INVALID_PARAMETER"),
        (_params(parts=[{"name": "includeResolvedAllergies", "valueString": "yes"}]), 422, "INVALID_PARAMETER"),
        (_params(extra={"name": "includeEverything", "valueBoolean": True}), 422, "INVALID_PARAMETER"),
        (_params(identifier={"value": "9111231130"}), 404, "PATIENT_NOT_FOUND"),
        (_params(identifier={"value": "9000000068"}), 403, "NO_PATIENT_CONSENT"),
    ],
)
async def test_body_rules(emulator: Emulator, http: aiohttp.ClientSession, body: Any, status: int, code: str) -> None:
    got, outcome = await post(http, emulator, body, good_headers(emulator))
    assert (got, code_of(outcome)) == (status, code)
    assert outcome["meta"]["profile"] == ["https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-OperationOutcome-1"]


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"Ssp-TraceID": "not-a-uuid"}, 400, "BAD_REQUEST"),
        ({"Ssp-From": ""}, 400, "BAD_REQUEST"),
        ({"Ssp-InteractionID": "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"}, 403, None),
        ({"Authorization": "Bearer abc.def.ghi"}, 400, "BAD_REQUEST"),
        ({"Authorization": ""}, 400, "BAD_REQUEST"),
        ({"Content-Type": "application/json"}, 415, None),
    ],
)
async def test_header_rules(
    emulator: Emulator, http: aiohttp.ClientSession, change: dict[str, str], status: int, code: str | None
) -> None:
    headers = {**good_headers(emulator), **change}
    got, outcome = await post(http, emulator, _params(), headers)
    assert (got, code_of(outcome)) == (status, code)
