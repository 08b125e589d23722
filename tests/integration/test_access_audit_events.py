"""The audit trail's content at its edges: refused attempts, count-only searches and size
refusals name what they were after; HEAD, OPTIONS, 404 and 405 leave exactly one event
each; a client that hangs up is still audited; exceptions are recorded once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest

from tests.support.access import (
    CLINICIAN,
    JANE,
    JANE_APP,
    JAYNE,
    audit_events,
    auth,
    by_request_id,
)
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import upstream_total
from tests.support.servers import Emulator
from tests.support.tokens import token

HL7 = (
    "MSH|^~\\&|PAS|RX1|FACADE|NHS|20260101120000||ADT^A04^ADT_A01|{control}|P|2.4\r"
    "EVN|A04|20260101120000\rPID|1||{hn}^^^RX1^MR~{nhs}^^^NHS^NH||SMITH^JANE||20101022|F\r"
)


def patient_entities(event: dict[str, Any]) -> list[str]:
    return [
        e["what"]["reference"]
        for e in event["entity"]
        if e.get("role", {}).get("code") == "1" and "reference" in e.get("what", {})
    ]


# ---- refused attempts name the patient they were after -------------------------------------------


async def test_a_refused_search_for_a_patient_is_found_by_auditing_that_patient(strict: CheckedClient) -> None:
    refused = await strict.get(f"/AllergyIntolerance?patient={JANE}", headers=auth(CLINICIAN))
    assert refused.status == 403  # no relationship: refused before NHS is asked (sound)
    everything = by_request_id(await audit_events(strict), refused.headers["X-Request-ID"])
    assert len(everything) == 1 and everything[0]["outcome"] == "4"  # recorded once (sound)
    for_jane = await audit_events(strict, patient=f"Patient/{JANE}")
    assert by_request_id(for_jane, refused.headers["X-Request-ID"])


async def test_a_refused_read_of_another_patient_names_that_patient(fhir: CheckedClient) -> None:
    other = await fhir.get(f"/Patient/{JAYNE}", headers=auth(JANE_APP))
    assert other.status == 403
    [event] = by_request_id(await audit_events(fhir), other.headers["X-Request-ID"])
    whats = [e.get("what", {}).get("reference") for e in event["entity"]]
    assert f"Patient/{JAYNE}" in whats, event["entity"]


async def test_a_count_only_search_is_audited_with_its_patient(fhir: CheckedClient) -> None:
    counted = await fhir.get(f"/AllergyIntolerance?patient={JANE}&_summary=count", headers=auth(CLINICIAN))
    assert counted.status == 200 and counted.body["total"] > 0
    for_jane = await audit_events(fhir, patient=f"Patient/{JANE}")
    assert by_request_id(for_jane, counted.headers["X-Request-ID"])


# ---- an access NHS answered whose client went away is still recorded ----------------


async def test_a_request_whose_client_disconnects_is_still_audited(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        emulator.url + "/_control/faults", json={"path_prefix": "/personal-demographics", "delay": 1.5, "times": 1}
    ) as resp:
        assert resp.status == 200
    request_id = str(uuid.uuid4())
    before = await upstream_total(http, emulator)
    with pytest.raises(TimeoutError):
        async with aiohttp.ClientSession() as impatient:
            await impatient.get(
                f"{fhir.base_url}/Patient/{JANE}",
                headers=auth(CLINICIAN, **{"X-Request-ID": request_id}),
                timeout=aiohttp.ClientTimeout(total=0.5),
            )
    await asyncio.sleep(2.5)  # NHS answers meanwhile; any audit write has happened by now
    assert await upstream_total(http, emulator) == before + 1  # NHS was asked
    assert len(by_request_id(await audit_events(fhir), request_id)) == 1  # sound: Hypercorn does not cancel


# ---- size refusals are authenticated and audited -------------------------------------------------


async def test_an_oversized_query_on_a_protected_path_is_audited(fhir: CheckedClient) -> None:
    """The size limits sit inside the access edge: an anonymous oversized request is a 401,
    an authenticated one a 414, and both leave their AuditEvent."""
    anonymous, signed = str(uuid.uuid4()), str(uuid.uuid4())
    answer = await fhir.get(f"/Patient?family={'x' * 9000}", anonymous=True, headers={"X-Request-ID": anonymous})
    assert answer.status == 401
    answer = await fhir.get(f"/Patient?family={'x' * 9000}", headers={"X-Request-ID": signed, **auth(CLINICIAN)})
    assert answer.status == 414
    events = await audit_events(fhir)
    assert [e["outcome"] for e in by_request_id(events, anonymous) + by_request_id(events, signed)] == ["4", "4"]


# ---- one event per request, whatever the method or path ---------------------------------


async def test_head_options_404_and_405_each_leave_exactly_one_event(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    asks = [
        ("HEAD", f"/Patient/{JANE}", 200),
        ("OPTIONS", f"/Patient/{JANE}", 405),
        ("GET", "/NoSuchType/1", 404),
        ("GET", "/Patient/1/x/y/z", 404),
        ("DELETE", f"/Patient/{JANE}", 405),
        ("GET", "/pas/v1/nowhere", 404),
    ]
    ids = []
    for method, path, status in asks:
        request_id = str(uuid.uuid4())
        async with http.request(
            method, fhir.base_url + path, headers=auth(CLINICIAN, **{"X-Request-ID": request_id})
        ) as resp:
            assert resp.status == status, (method, path)
        ids.append(request_id)
    events = await audit_events(fhir)
    for (method, path, _), request_id in zip(asks, ids):
        assert len(by_request_id(events, request_id)) == 1, (method, path)
    head = by_request_id(events, ids[0])[0]
    assert patient_entities(head) == [f"Patient/{JANE}"]


async def test_a_304_is_only_given_after_the_access_check(strict: CheckedClient) -> None:
    """If-None-Match with a guessed ETag cannot confirm a record to a caller refused it."""
    first = await strict.get(f"/Patient/{JANE}", headers=auth(CLINICIAN))
    assert first.status == 200
    other_app = token("patient/*.rs", roles=["clinician"], patient=JAYNE, subject="jayne-app")
    answer = await strict.get(f"/Patient/{JANE}", headers=auth(other_app, **{"If-None-Match": first.headers["ETag"]}))
    assert answer.status == 403 and "ETag" not in answer.headers


async def test_public_documents_carry_no_patient_data(fhir: CheckedClient, http: aiohttp.ClientSession) -> None:
    # (JANE's number is the documented example in search parameter descriptions: use JAYNE)
    seen = await fhir.get(f"/Patient/{JAYNE}", headers=auth(CLINICIAN))  # something in the caches and the trail
    family = seen.body["name"][0]["family"]
    for path in ("/metadata", "/.well-known/smart-configuration", "/openapi.json", "/_health"):
        async with http.get(fhir.base_url + path) as resp:
            text = await resp.text()
            assert resp.status == 200, path
            assert JAYNE not in text and family not in text, path
