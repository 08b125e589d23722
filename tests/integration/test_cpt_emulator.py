"""The CPT emulator enforces what CPT enforces (headers, Modulus-11, one search key, 404s
in CPT's error shape), over a real socket."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from tests.support.access import CPT
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator


def headers(**over: str | None) -> dict[str, str]:
    out = {"X-Request-ID": str(uuid.uuid4()), **CPT, **over}
    return {k: v for k, v in out.items() if v is not None}


async def get(
    http: aiohttp.ClientSession,
    emulator: Emulator,
    path: str,
    hdrs: dict[str, str],
    params: list[tuple[str, str]] | None = None,
) -> tuple[int, Any]:
    async with http.get(f"{emulator.cpt_url}{path}", headers=hdrs, params=params) as resp:
        return resp.status, await resp.json(content_type=None)


def error_code(body: dict[str, Any]) -> str:
    validate_r4(body)
    coding = body["issue"][0]["details"]["coding"][0]
    assert coding["system"] == "https://fhir.nhs.uk/CodeSystem/http-error-codes"
    return coding["code"]


async def test_search_lists_each_issue_with_the_patient(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    status, body = await get(http, emulator, "/RequestGroup", headers(), [("nhsNumber", "9000000009")])
    assert status == 200
    assert body["total"] == 3  # acute + two issues of the eRD
    modes = [(e["search"]["mode"], e["resource"]["resourceType"]) for e in body["entry"]]
    assert modes == [("include", "Patient")] + [("match", "RequestGroup")] * 3


async def test_search_by_prescription_id_with_plus(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    status, body = await get(http, emulator, "/RequestGroup", headers(), [("prescriptionId", "B7C21D-A83008-9D44E+")])
    assert status == 200 and body["total"] == 2


@pytest.mark.parametrize(
    "over, fragment",
    [
        ({"X-Request-ID": None}, "x-request-id"),
        ({"X-Request-ID": "not-a-uuid"}, "x-request-id"),
        ({"nhsd-session-urid": None}, "nhsd-session-urid"),
        ({"nhsd-organization-uuid": None}, "nhsd-organization-uuid"),
        ({"nhsd-session-jobrole": None}, "nhsd-session-jobrole"),
    ],
)
async def test_required_headers(
    http: aiohttp.ClientSession, emulator: Emulator, over: dict[str, str | None], fragment: str
) -> None:
    status, body = await get(http, emulator, "/RequestGroup", headers(**over), [("nhsNumber", "9000000009")])
    assert status == 400
    assert error_code(body) == "BAD_REQUEST"
    assert fragment in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "params",
    [
        [("nhsNumber", "9000000000")],
        [],
        [("nhsNumber", "9000000009"), ("prescriptionId", "A1F3C2-A83008-4B7E1K")],
    ],
)
async def test_bad_search_keys(http: aiohttp.ClientSession, emulator: Emulator, params: list[tuple[str, str]]) -> None:
    status, body = await get(http, emulator, "/RequestGroup", headers(), params)
    assert status == 400 and error_code(body) == "BAD_REQUEST"


async def test_unknown_prescription_and_issue_are_404(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    status, body = await get(http, emulator, "/RequestGroup/FFFFFF-A83008-00000Z", headers())
    assert status == 404 and error_code(body) == "NOT_FOUND"
    status, body = await get(http, emulator, "/RequestGroup/B7C21D-A83008-9D44E%2B", headers(), [("issueNumber", "9")])
    assert status == 404 and error_code(body) == "NOT_FOUND"


async def test_details_carry_items_dispenses_and_the_group(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    status, body = await get(http, emulator, "/RequestGroup/A1F3C2-A83008-4B7E1K", headers())
    assert status == 200
    types = [e["resource"]["resourceType"] for e in body["entry"]]
    assert types.count("MedicationRequest") == 3
    assert types.count("MedicationDispense") == 2  # fully and partially dispensed; the owed item has none
    assert types[-1] == "RequestGroup"


async def test_malformed_or_refused_token_is_401(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    for auth in ("Basic abc", "Bearer expired-cis2-token"):
        status, body = await get(
            http, emulator, "/RequestGroup", headers(Authorization=auth), [("nhsNumber", "9000000009")]
        )
        assert status == 401 and error_code(body) == "UNAUTHORIZED"
