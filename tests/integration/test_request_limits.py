"""Leaks and abuse a new user finds (issue 8), over real sockets: request size limits, and
header values that used to be 500s. Every refusal is an OperationOutcome (FHIR side) or
the PAS error shape (/pas/v1), with its own status, and never stalls other clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from tests.support.checked_client import CheckedClient
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator, FHIRClient, running_facade
from tests.support.tokens import bearer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JANE = {"hospitalNumber": "H801", "surname": "Smith", "forenames": "Jane", "dateOfBirth": "22/10/2010", "sex": "F"}


def too_costly(answer: Any, status: int) -> str:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.issue["code"] == "too-costly"
    return str(answer.issue["diagnostics"])


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    """A body sent chunked (no Content-Length), so only counting it as it streams stops it."""
    for _ in range(count):
        yield b"a" * size
        await asyncio.sleep(0)


async def raw_request(base_url: str, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send only a request head (no body at all) and read the answer to the end."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=5)  # the server closes: the body was never read
    finally:
        writer.close()
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


# -- bodies ----------------------------------------------------------------------------------


async def test_a_declared_50_mb_body_is_refused_before_a_byte_is_sent(facade: FHIRClient) -> None:
    token = bearer()["Authorization"]
    status, headers, body = await raw_request(
        facade.base_url,
        (
            "POST /Patient/_search HTTP/1.1\nHost: facade\nContent-Type: application/x-www-form-urlencoded\n"
            f"Content-Length: 50000000\nAuthorization: {token}\n"
        ),
    )
    assert status == 413 and headers["content-type"] == "application/fhir+json; charset=utf-8"
    assert headers["cache-control"] == "no-store" and headers["x-request-id"]
    outcome = orjson.loads(body)
    validate_r4(outcome)
    assert outcome["issue"][0]["code"] == "too-costly" and "1048576 bytes" in outcome["issue"][0]["diagnostics"]


async def test_a_declared_oversized_pas_body_is_refused_too(facade: FHIRClient) -> None:
    token = bearer()["Authorization"]
    status, _, body = await raw_request(
        facade.base_url,
        (
            "POST /pas/v1/patients HTTP/1.1\nHost: facade\nContent-Type: application/json\n"
            f"Content-Length: 50000000\nAuthorization: {token}\n"
        ),
    )
    assert status == 413 and orjson.loads(body)["issue"][0]["code"] == "too-costly"


async def test_a_chunked_body_is_counted_as_it_streams(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, max_body_bytes=2048) as url:
        fhir = CheckedClient(url, http)
        answer = await fhir.post("/Patient/_search", data=chunks(3, 1000), headers=FORM)
        assert "2048 bytes" in too_costly(answer, 413)
        status, _, error = await FHIRClient(url, http).post(
            "/pas/v1/patients", data=chunks(3, 1000), headers={"Content-Type": "application/json"}
        )
        assert status == 413 and set(error) == {"errors", "requestId"}  # the PAS error shape
        assert "2048 bytes" in error["errors"][0]["reason"]
        within = await fhir.post("/Patient/_search", data=b"family=Smith&birthdate=2010-10-22", headers=FORM)
        assert within.status == 200


# -- query strings and lists -----------------------------------------------------------------


async def test_a_long_query_string_is_414(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient?family=" + "a" * 9000)
    assert "FACADE_MAX_QUERY_CHARS" in too_costly(answer, 414)
    assert (await fhir.get("/Patient?family=" + "a" * 100 + "&birthdate=2010")).status != 414


async def test_forty_thousand_elements_are_a_quick_400_and_stall_no_one(fhir: CheckedClient) -> None:
    names = ",".join(f"e{i}" for i in range(40_000))
    body = f"family=Smith&birthdate=2010-10-22&_elements={names}".encode()
    started = time.perf_counter()
    refused, metadata = await asyncio.gather(
        fhir.post("/Patient/_search", data=body, headers=FORM), fhir.get("/metadata")
    )
    assert time.perf_counter() - started < 3  # was 11-16 s, with every other client waiting
    assert "_elements" in too_costly(refused, 400) and metadata.status == 200


async def test_list_limits_name_the_list(fhir: CheckedClient) -> None:
    many_ids = ",".join(f"https://fhir.nhs.uk/Id/nhs-number|{i}" for i in range(101))
    answer = await fhir.post("/Patient/_search", data={"identifier": many_ids}, headers=FORM)
    assert "'identifier' lists values: 101 given" in too_costly(answer, 400)
    includes = "&".join(["_include=Patient:general-practitioner"] * 101)
    answer = await fhir.get(f"/Patient?family=Smith&{includes}")
    assert "Search parameters: 102 given" in too_costly(answer, 400)


async def test_the_configured_list_limit_applies(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, max_list_items=3) as url:
        fhir = CheckedClient(url, http)
        answer = await fhir.get("/Patient?family=Smith&birthdate=2010-10-22&_elements=name,gender,birthDate,address")
        assert "4 given, at most 3" in too_costly(answer, 400)
        assert (await fhir.get("/Patient?family=Smith&birthdate=2010-10-22&_elements=name,gender")).status == 200


# -- header values that were 500s ------------------------------------------------------------


async def test_odd_cache_control_values_are_ignored(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, cache_enabled=True) as url:
        fhir = CheckedClient(url, http)
        for value in ("max-age=²", "max-age=٣", "max-age=" + "9" * 5000, 'max-age="1e9", no-cache'):
            answer = await fhir.get("/Patient/9000000009", headers={"Cache-Control": value})
            assert answer.status == 200, value


async def test_odd_conditional_headers_are_ignored(fhir: CheckedClient) -> None:
    for headers in (
        {"If-None-Match": 'W/"' + "9" * 5000 + '"'},
        {"If-None-Match": ",,W/,"},
        {"If-Modified-Since": "Mon, 01 Jan ٢٠٣٠ 00:00:00 GMT"},
        {"If-Modified-Since": "Mon, 01 Jan " + "9" * 5000 + " 00:00:00 GMT"},
        {"If-Modified-Since": "Fri, 31 Dec 9999 23:59:59 -2359"},
    ):
        answer = await fhir.get("/Patient/9000000009", headers=headers)
        assert answer.status in (200, 304), headers


async def test_odd_if_match_is_a_412_in_the_pas_shape(facade: FHIRClient) -> None:
    status, headers, _ = await facade.post("/pas/v1/patients", json=JANE)
    assert status == 201
    for value in ('W/"' + "9" * 5000 + '"', 'W/"٣"', '"1" x', 'W/"' + "1" * 19 + '"'):
        status, _, error = await facade.request("PUT", "/pas/v1/patients/H801", json=JANE, headers={"If-Match": value})
        assert status == 412 and set(error) == {"errors", "requestId"}, value


async def test_deeply_nested_pas_json_is_a_400_in_the_pas_shape(facade: FHIRClient) -> None:
    for depth in (300, 5_000, 100_000):
        body = b'{"hospitalNumber": "H802", "surname": ' + b"[" * depth + b"]" * depth + b"}"
        status, _, error = await facade.post(
            "/pas/v1/patients", data=body, headers={"Content-Type": "application/json"}
        )
        assert status == 400 and set(error) == {"errors", "requestId"}, depth
        assert error["errors"][0]["reason"]
    status, _, outcome = await facade.post(
        "/pas/v1/patients",
        data=b'{"surname": ' + b"[" * 300 + b"]" * 300 + b"}",
        headers={"Content-Type": "application/json", "Accept": "application/fhir+json"},
    )
    assert status == 400
    validate_r4(outcome)
