"""NHSClient against a raw loopback socket that answers the way live PDS does.

The emulator runs on Hypercorn, which title-cases header names; live PDS (Apigee) sends
them in lower case (see shared/nhs-examples/captured/*.headers.txt). These tests pin the
client's header handling to the real spelling, with a canned HTTP answer per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from server.nhs.client import ClientConfig, NHSClient
from server.nhs.errors import UpstreamBadResponse, UpstreamRateLimited, UpstreamRejected, UpstreamUnavailable
from server.providers.base import RequestContext

CTX = RequestContext(request_id="inbound.1", base_url="http://facade.test")


@contextlib.asynccontextmanager
async def canned(status_line: str, headers: list[tuple[str, str]], body: bytes) -> AsyncIterator[tuple[str, list]]:
    """A one-answer HTTP server; yields its URL and the raw requests it received."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        head = [status_line] + [f"{k}: {v}" for k, v in headers] + [f"content-length: {len(body)}", "connection: close"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.close()
        await server.wait_closed()


def outcome(code: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "transient", "details": {"coding": [{"code": code}]}}],
        }
    )


async def call(url: str, **config: str) -> object:
    async with aiohttp.ClientSession() as session:
        client = NHSClient(session, ClientConfig(api="PDS", base_url=url, **config))
        return await client.request("GET", "Patient/9000000009", CTX)


async def test_lower_case_headers_are_read_case_insensitively() -> None:
    async with canned(
        "HTTP/1.1 200 OK",
        [("etag", 'W/"2"'), ("content-type", "application/fhir+json")],
        b'{"resourceType": "Patient", "id": "9000000009"}',
    ) as (url, _):
        response = await call(url)
    assert response.headers["ETag"] == 'W/"2"'  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "status_line, error",
    [
        ("HTTP/1.1 503 Service Unavailable", UpstreamUnavailable),
        ("HTTP/1.1 429 Too Many Requests", UpstreamRateLimited),
    ],
)
async def test_lower_case_retry_after_is_honoured(status_line: str, error: type) -> None:
    async with canned(status_line, [("retry-after", "9")], outcome("SERVICE_UNAVAILABLE")) as (url, _):
        with pytest.raises(error) as caught:
            await call(url)
    assert caught.value.retry_after == 9.0


async def test_request_headers_sent() -> None:
    async with canned("HTTP/1.1 404 Not Found", [], outcome("RESOURCE_NOT_FOUND")) as (url, received):
        with pytest.raises(UpstreamRejected) as caught:
            await call(url, end_user_ods="RX1")
    assert caught.value.status == 404 and caught.value.nhs_code == "RESOURCE_NOT_FOUND"
    lines = received[0].decode().split("\r\n")
    sent = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
    assert uuid.UUID(sent["x-request-id"]).version == 4
    assert sent["x-correlation-id"] == "inbound-1"
    assert sent["nhsd-end-user-organisation-ods"] == "RX1"
    assert sent["accept"] == "application/fhir+json"


async def test_non_json_success_is_a_bad_response_and_non_json_error_keeps_its_status() -> None:
    async with canned("HTTP/1.1 200 OK", [], b"<html>proxy page</html>") as (url, _):
        with pytest.raises(UpstreamBadResponse):
            await call(url)
    async with canned("HTTP/1.1 502 Bad Gateway", [], b"<html>proxy page</html>") as (url, _):
        with pytest.raises(UpstreamUnavailable) as caught:
            await call(url)
    assert caught.value.status == 502 and caught.value.nhs_code is None


async def test_a_read_sends_no_query_and_a_search_sends_its_parameters_in_order() -> None:
    async with canned("HTTP/1.1 200 OK", [], b'{"resourceType": "Patient", "id": "9000000009"}') as (url, received):
        await call(url)
    assert received[0].split(b"\r\n")[0] == b"GET /Patient/9000000009 HTTP/1.1"
    async with canned("HTTP/1.1 200 OK", [], b'{"resourceType": "Bundle"}') as (url, received):
        async with aiohttp.ClientSession() as session:
            client = NHSClient(session, ClientConfig(api="PDS", base_url=url))
            await client.request("GET", "Patient", CTX, params=[("family", "Smith Jones"), ("gender", "female")])
    assert received[0].split(b"\r\n")[0] == b"GET /Patient?family=Smith+Jones&gender=female HTTP/1.1"


async def test_an_exchange_is_traced_only_while_a_trace_is_open() -> None:
    from server import request_trace
    from server.request_trace import Trace, tracing

    trace = Trace("rid", "GET", "/Patient/9000000009")
    async with canned("HTTP/1.1 200 OK", [], b'{"resourceType": "Patient", "id": "9000000009"}') as (url, _):
        await call(url)  # no trace open: nothing recorded anywhere, no error
    async with canned("HTTP/1.1 200 OK", [], b'{"resourceType": "Patient", "id": "9000000009"}') as (url, _):
        with tracing(trace):
            await call(url)
    assert request_trace.current() is None
    [event] = [e for e in trace.events if e["kind"] == "nhs"]
    assert event["detail"]["status"] == 200 and event["detail"]["outcome"] == "ok"
