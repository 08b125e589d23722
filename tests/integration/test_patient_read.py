"""Patient read through real sockets: headers, conditional reads, vread, PDS quirks."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import aiohttp

from server.app import GZIP_MINIMUM_SIZE
from server.sources.pds.emulator_data import PATIENTS
from tests.support.checked_client import FHIR_JSON_UTF8, CheckedClient
from tests.support.emulator_control import upstream_requests, upstream_total
from tests.support.servers import Emulator
from tests.support.tokens import default_token


async def test_read_has_etag_last_modified_and_the_pds_record(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient/9000000009")
    assert answer.status == 200
    assert answer.headers["ETag"] == 'W/"2"'
    assert answer.headers["Last-Modified"] == "Sun, 01 Mar 2026 09:30:00 GMT"
    assert answer.body == PATIENTS["9000000009"]


async def test_request_id_is_echoed_and_passed_to_pds_as_correlation(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    client_id = "6F1C1E4E-4A7E-4B0E-9A53-6F0C2A1D9B10"  # a UUID, in any case, is kept as sent
    answer = await fhir.get("/Patient/9000000009", headers={"X-Request-ID": client_id})
    assert answer.headers["X-Request-ID"] == client_id
    seen = (await upstream_requests(http, emulator))["context_headers"]
    assert seen[-1]["x-correlation-id"] == client_id
    uuid.UUID(seen[-1]["x-request-id"])  # PDS's own X-Request-ID is a fresh UUID


async def test_request_id_is_generated_when_absent_or_unsafe(fhir: CheckedClient) -> None:
    first = await fhir.get("/Patient/9000000009")
    second = await fhir.get("/Patient/9000000009", headers={"X-Request-ID": "bad id\twith spaces"})
    for answer in (first, second):
        uuid.UUID(answer.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_head_has_get_headers_and_no_body(fhir: CheckedClient) -> None:
    get = await fhir.get("/Patient/9000000009")
    head = await fhir.request("HEAD", "/Patient/9000000009")
    assert head.status == 200 and head.raw == b""
    for name in ("ETag", "Last-Modified", "Content-Type", "Content-Length"):
        assert head.headers[name] == get.headers[name], name


async def test_head_sends_no_body_bytes_on_the_wire(fhir: CheckedClient) -> None:
    """aiohttp never reads a HEAD body, so ask the socket: the next response follows at once."""
    host, port = urlsplit(fhir.base_url).hostname, urlsplit(fhir.base_url).port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = (
            f"HEAD /Patient/9000000009 HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {default_token()}\r\n\r\n"
            f"GET /metadata?_summary=true HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode())
        data = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
    head_part, _, rest = data.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"HTTP/1.1 200"), rest[:80]  # nothing between the two responses


async def test_if_none_match_gives_304_with_etag_and_no_body(fhir: CheckedClient) -> None:
    for validator in ('W/"2"', '"2"', 'W/"1", W/"2"', "*"):
        answer = await fhir.get("/Patient/9000000009", headers={"If-None-Match": validator})
        assert answer.status == 304, validator
        assert answer.raw == b""
        assert answer.headers["ETag"] == 'W/"2"'
        assert answer.headers["Content-Type"] == FHIR_JSON_UTF8
    stale = await fhir.get("/Patient/9000000009", headers={"If-None-Match": 'W/"1"'})
    assert stale.status == 200 and stale.body["id"] == "9000000009"


async def test_if_modified_since(fhir: CheckedClient) -> None:
    same = await fhir.get("/Patient/9000000009", headers={"If-Modified-Since": "Sun, 01 Mar 2026 09:30:00 GMT"})
    assert same.status == 304 and same.raw == b"" and same.headers["ETag"] == 'W/"2"'
    older = await fhir.get("/Patient/9000000009", headers={"If-Modified-Since": "Sat, 28 Feb 2026 00:00:00 GMT"})
    assert older.status == 200


async def test_vread_current_version_and_404_for_others(fhir: CheckedClient) -> None:
    current = await fhir.get("/Patient/9000000009/_history/2")
    assert current.status == 200 and current.headers["ETag"] == 'W/"2"'
    assert current.body["meta"]["versionId"] == "2"
    old = await fhir.get("/Patient/9000000009/_history/1")
    assert old.status == 404 and old.issue["code"] == "not-found"
    assert "'1'" in old.issue["diagnostics"]


async def test_invalid_fhir_id_is_400(fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession) -> None:
    too_long = "9" * 65
    for bad in ("bad$id", too_long, "has_underscore"):
        answer = await fhir.get(f"/Patient/{bad}")
        assert answer.status == 400, bad
        assert "valid FHIR id" in answer.issue["diagnostics"]
    assert await upstream_total(http, emulator) == 0


async def test_invalid_nhs_number_is_400_and_never_reaches_pds(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    for number in ("9000000000", "9000000001", "123", "12345678901"):
        answer = await fhir.get(f"/Patient/{number}")
        assert answer.status == 400, number
        assert answer.issue["details"]["coding"][0]["code"] == "INVALID_RESOURCE_ID"
        assert "Modulus-11" in answer.issue["diagnostics"]
    assert await upstream_total(http, emulator) == 0
    await fhir.get("/Patient/9000000009")  # the counter does count real calls
    assert await upstream_total(http, emulator) == 1


async def test_not_found_is_404_with_the_nhs_code(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient/9111231130")
    assert answer.status == 404
    assert answer.issue["code"] == "not-found"
    assert answer.issue["details"]["coding"][0]["code"] == "RESOURCE_NOT_FOUND"


async def test_invalidated_record_is_410(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient/9000000076")
    assert answer.status == 410
    assert answer.issue["code"] == "deleted"
    assert answer.issue["details"]["coding"][0]["code"] == "INVALIDATED_RESOURCE"


async def test_superseded_number_returns_the_successor_with_content_location(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient/9000000041")
    assert answer.status == 200
    assert answer.body["id"] == "9000000068"
    assert answer.headers["Content-Location"] == f"{fhir.base_url}/Patient/9000000068"
    assert answer.headers["ETag"] == 'W/"3"'
    direct = await fhir.get("/Patient/9000000068")
    assert "Content-Location" not in direct.headers


async def test_restricted_patients_are_passed_through_unchanged(fhir: CheckedClient) -> None:
    for nhs, label in (("9000000025", "R"), ("9000000084", "V")):
        answer = await fhir.get(f"/Patient/{nhs}")
        assert answer.status == 200
        assert answer.body == PATIENTS[nhs]  # nothing added, nothing back-filled
        assert answer.body["meta"]["security"][0]["code"] == label
        assert not {"address", "telecom", "generalPractitioner"} & set(answer.body)


async def test_read_summary_and_elements(fhir: CheckedClient) -> None:
    summary = await fhir.get("/Patient/9000000009?_summary=true")
    assert summary.status == 200
    assert "SUBSETTED" in [t["code"] for t in summary.body["meta"]["tag"]]
    assert "extension" not in summary.body and "name" in summary.body
    elements = await fhir.get("/Patient/9000000009?_elements=gender,birthDate")
    assert set(elements.body) == {"resourceType", "id", "meta", "gender", "birthDate"}
    bad = await fhir.get("/Patient/9000000009?_summary=count")
    assert bad.status == 400 and "_summary" in bad.issue["diagnostics"]


async def test_pretty_printing(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient/9000000009?_pretty=true")
    assert answer.raw.startswith(b'{\n  "resourceType"')


async def test_gzip_compresses_large_bodies_and_keeps_the_fhir_content_type(fhir: CheckedClient) -> None:
    answer = await fhir.get("/metadata", headers={"Accept-Encoding": "gzip"})
    assert len(answer.raw) >= GZIP_MINIMUM_SIZE
    assert answer.headers["Content-Encoding"] == "gzip"
    assert int(answer.headers["Content-Length"]) < len(answer.raw)
    assert answer.body["resourceType"] == "CapabilityStatement"  # CheckedClient checked the content type


async def test_small_bodies_are_sent_uncompressed_even_when_gzip_is_accepted(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient/9000000009", headers={"Accept-Encoding": "gzip"})
    assert len(answer.raw) < GZIP_MINIMUM_SIZE
    assert "Content-Encoding" not in answer.headers
    assert int(answer.headers["Content-Length"]) == len(answer.raw)
    assert answer.body["id"] == "9000000009"
