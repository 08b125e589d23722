"""Upstream failures and PDS quirks, injected over the emulator's /_control API, end to end."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from server.nhs.client import ClientConfig, NHSClient
from server.nhs.errors import UpstreamError, UpstreamRejected
from server.providers.base import RequestContext
from server.sources.pds.source import PDS
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import inject, upstream_requests
from tests.support.servers import Emulator, running_facade

TOO_MANY_400 = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "information",
            "code": "not-found",
            "details": {
                "coding": [
                    {
                        "system": "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode",
                        "version": "1",
                        "code": "TOO_MANY_MATCHES",
                        "display": "Too Many Matches",
                    }
                ]
            },
        }
    ],
}
READ = "/Patient/9000000009"
SEARCH = "/Patient?family=Smith&birthdate=2010-10-22"


@pytest.fixture
async def quick(emulator: Emulator, http: aiohttp.ClientSession) -> CheckedClient:
    """A façade that gives up on PDS after 0.2 s and does not retry, so each one-shot fault
    reaches the client (retries have their own tests) and timeout tests stay fast."""
    async with running_facade(emulator, upstream_read_timeout=0.2, upstream_retry_attempts=1) as url:
        yield CheckedClient(url, http)


@pytest.mark.parametrize(
    "fault, status, retry_after",
    [
        ({"status": 500}, 502, None),
        ({"status": 502}, 503, "5"),
        ({"status": 503, "retry_after": "7"}, 503, "7"),
        ({"status": 504}, 504, "5"),
        ({"status": 429}, 503, "5"),
        ({"status": 408}, 504, "5"),
        ({"reset": True}, 503, "5"),
        ({"malformed": True}, 502, None),
        ({"delay": 0.6}, 504, "5"),
    ],
)
async def test_upstream_failures_become_honest_gateway_errors(
    quick: CheckedClient,
    emulator: Emulator,
    http: aiohttp.ClientSession,
    fault: dict,
    status: int,
    retry_after: str | None,
) -> None:
    for path in (READ, SEARCH):
        await inject(http, emulator, **fault)
        answer = await quick.get(path)
        assert answer.status == status, (fault, path, answer.body)
        assert answer.headers.get("Retry-After") == retry_after
        assert "Traceback" not in answer.raw.decode()
    assert (await quick.get(READ)).status == 200  # faults were one-shot; PDS is back


async def test_a_fault_for_one_correlation_id_meets_only_that_request(
    quick: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A fault keyed to an X-Correlation-ID (the façade sends its inbound request id there)
    spares the requests to the same API that come first: a soak with requests in flight
    knows which one met it."""
    target, other = str(uuid.uuid4()), str(uuid.uuid4())
    await inject(http, emulator, status=500, correlation_id=target)
    for _ in range(3):
        assert (await quick.get(READ, headers={"X-Request-ID": other})).status == 200
    assert (await quick.get(READ, headers={"X-Request-ID": target})).status == 502
    assert (await quick.get(READ, headers={"X-Request-ID": target})).status == 200  # one-shot, as any fault


async def test_upstream_refusing_connections_is_503(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    from tests.support.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}/{PDS.emulator_path}"
    async with running_facade(emulator, pds_base_url=dead) as url:
        answer = await CheckedClient(url, http).get(READ)
    assert answer.status == 503 and answer.issue["code"] == "transient"


async def test_too_many_matches_http_200_form(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, pds_max_results=1) as url:
        fhir = CheckedClient(url, http)
        answer = await fhir.get("/Patient?family=Sm&birthdate=2010")
        assert answer.status == 422
        assert answer.issue["code"] == "multiple-matches"
        assert answer.issue["details"]["coding"][0]["code"] == "TOO_MANY_MATCHES"
        assert "narrow" in answer.issue["diagnostics"]
        one = await fhir.get("/Patient?family=Smith&birthdate=2010-10-22")
        assert one.status == 200 and one.body["total"] == 1
    counts = (await upstream_requests(http, emulator))["counts"]
    assert any("_max-results=1" in key for key in counts)


async def test_max_results_is_not_sent_unless_configured(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    answer = await fhir.get("/Patient?family=Sm&birthdate=2010")
    assert answer.status == 200 and answer.body["total"] == 3
    counts = (await upstream_requests(http, emulator))["counts"]
    assert not any("_max-results" in key for key in counts)


async def test_too_many_matches_http_400_form(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    await inject(http, emulator, status=400, body=TOO_MANY_400)
    answer = await fhir.get("/Patient?family=Sm&birthdate=2010")
    assert answer.status == 422
    assert answer.issue["code"] == "multiple-matches"
    assert answer.issue["details"]["coding"][0]["code"] == "TOO_MANY_MATCHES"


async def test_pds_rejection_of_a_search_is_400_with_its_code(fhir: CheckedClient) -> None:
    # A wildcard in the first two characters passes our parser but PDS refuses it.
    answer = await fhir.get("/Patient?family=S*ith&birthdate=2010")
    assert answer.status == 400
    assert answer.issue["details"]["coding"][0]["code"] == "INVALID_SEARCH_DATA"


# -- what the façade sends to PDS --------------------------------------------------------------

CLIENT_ID = "3d6f0a51-8b2c-4e1d-9f7a-2c4b6e8d0f13"


async def test_context_headers_sent_to_pds(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, end_user_ods="RX1") as url:
        await CheckedClient(url, http).get(READ, headers={"X-Request-ID": CLIENT_ID})
    (sent,) = (await upstream_requests(http, emulator))["context_headers"]
    uuid.UUID(sent["x-request-id"])
    assert sent["x-correlation-id"] == CLIENT_ID  # the client's id (a UUID: no '.', which PDS asks for)
    assert sent["nhsd-end-user-organisation-ods"] == "RX1"


async def test_no_ods_header_unless_configured(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    await fhir.get(READ)
    await fhir.get(READ)
    sent = (await upstream_requests(http, emulator))["context_headers"]
    assert len(sent) == 2 and all("nhsd-end-user-organisation-ods" not in s for s in sent)
    assert sent[0]["x-request-id"] != sent[1]["x-request-id"]  # a fresh id per logical request


async def test_client_reuses_the_request_id_when_resending(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    client = NHSClient(http, ClientConfig(api="PDS", base_url=emulator.pds_url))
    ctx = RequestContext(request_id="inbound-1", base_url="http://facade.test")
    await inject(http, emulator, status=503)
    request_id = str(uuid.uuid4())
    with pytest.raises(UpstreamError):  # the 503 (no retry at this level)
        await client.send("GET", "Patient/9000000009", ctx, request_id)
    response = await client.send("GET", "Patient/9000000009", ctx, request_id)  # the re-send
    assert response.status == 200 and response.request_id == request_id
    assert response.headers["X-Request-ID"] == request_id  # PDS mirrors it
    assert (await upstream_requests(http, emulator))["request_ids"] == [request_id, request_id]


async def test_emulator_enforces_pds_header_rules(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    client = NHSClient(http, ClientConfig(api="PDS", base_url=emulator.pds_url))
    ctx = RequestContext(request_id="r", base_url="http://facade.test")
    with pytest.raises(UpstreamRejected) as missing:
        await client.send("GET", "Patient/9000000009", ctx, "")
    assert (missing.value.status, missing.value.nhs_code) == (400, "MISSING_VALUE")
    with pytest.raises(UpstreamRejected) as not_uuid:
        await client.send("GET", "Patient/9000000009", ctx, "not-a-uuid")
    assert (not_uuid.value.status, not_uuid.value.nhs_code) == (400, "INVALID_VALUE")
    with pytest.raises(UpstreamRejected) as bad_number:
        await client.request("GET", "Patient/9000000000", ctx)
    assert (bad_number.value.status, bad_number.value.nhs_code) == (400, "INVALID_RESOURCE_ID")
    with pytest.raises(UpstreamRejected) as too_little:
        await client.request("GET", "Patient", ctx, params=[("family", "Smith")])
    assert (too_little.value.status, too_little.value.nhs_code) == (400, "MISSING_VALUE")
    ok = await client.request("GET", "Patient/9000000009", ctx)
    assert ok.headers["ETag"] == 'W/"2"'


async def test_emulator_rejects_unknown_fault_keys_with_a_400(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A typo in a test's fault spec must fail loudly, not inject nothing or crash the emulator."""
    async with http.post(f"{emulator.url}/_control/faults", json={"count": 3, "status": 503}) as resp:
        assert resp.status == 400
        assert "count" in (await resp.json())["error"]
    async with http.post(f"{emulator.url}/_control/faults", data=b"not json") as resp:
        assert resp.status == 400
    async with http.get(f"{emulator.url}/_control/requests") as resp:
        assert (await resp.json())["total"] == 0
