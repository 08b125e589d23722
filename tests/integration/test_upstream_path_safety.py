"""ServiceRequest ids with dot segments (issue 8): `bars.sandbox...` made the façade read
BaRS `ServiceRequest/..`, i.e. another upstream path. Such ids, encoded or not, are a
404 OperationOutcome and reach no NHS API at all (the emulator counts every request)."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
import yarl

from tests.support.checked_client import FHIR_JSON_UTF8, CheckedClient
from tests.support.emulator_control import upstream_total
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator, running_facade
from tests.support.tokens import bearer

ERS_CONTEXT = {"NHSD-eRS-Business-Function": "REFERRING_CLINICIAN", "NHSD-End-User-Organisation-ODS": "R69"}

DOT_IDS = [
    "bars.sandbox..",
    "bars.sandbox...",
    "bars.sandbox.a..b",
    "bars.sandbox..a",
    "ers.000000070000..",
    "ers.000000070000...",
    "ers3..",
    "..",
    ".",
]
# As sent on the wire: percent-encoded dots are decoded by the server before routing.
ENCODED_IDS = [
    "bars.sandbox.%2E%2E",
    "bars.sandbox.%2e%2e",
    "bars.sandbox.%2E",
    "%2E%2E",
    "bars.sandbox.%2E%2E%2F%2E%2E",
    "bars.sandbox.a%2F..%2F..",
    "ers.000000070000.%2E%2E",
]


@pytest.mark.parametrize("resource_id", DOT_IDS)
async def test_dot_segment_ids_reach_no_upstream(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession, resource_id: str
) -> None:
    before = await upstream_total(http, emulator)
    answer = await fhir.get(f"/ServiceRequest/{resource_id}", headers=ERS_CONTEXT)
    # `..` resolves to [base]: a system search, 501 (server/fhir/routes.py).
    assert answer.status in (400, 404, 501), (resource_id, answer.status)
    assert await upstream_total(http, emulator) == before


async def test_encoded_dot_segment_ids_reach_no_upstream(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, ers_access_mode="application-restricted") as url:
        before = await upstream_total(http, emulator)
        for resource_id in ENCODED_IDS:
            target = yarl.URL(f"{url}/ServiceRequest/{resource_id}", encoded=True)  # sent exactly as written
            async with http.get(target, headers={**bearer(), **ERS_CONTEXT}) as resp:
                raw = await resp.read()
                assert resp.status in (400, 404), (resource_id, resp.status)
                assert resp.headers["Content-Type"] == FHIR_JSON_UTF8
            validate_r4(orjson.loads(raw))
        assert await upstream_total(http, emulator) == before


async def test_plain_ids_still_read(fhir: CheckedClient) -> None:
    """The strict check keeps real ids: e-RS ids carry dots of their own (`r.<uuid>`)."""
    search = await fhir.get("/ServiceRequest?patient=9000000009")
    assert search.status == 200 and search.body.get("entry")
    for entry in search.body["entry"]:
        if entry["search"]["mode"] == "match":
            read = await fhir.get(f"/ServiceRequest/{entry['resource']['id']}")
            assert read.status == 200 and read.body["id"] == entry["resource"]["id"]
