"""What answers leak (issue 8), over real sockets: PHI answers are never cacheable, CORS is
off unless configured, and a client's X-Request-ID is kept only when it is a UUID."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import upstream_requests
from tests.support.servers import Emulator, FHIRClient, running_facade

ORIGIN = "https://app.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization, x-request-id, x-purpose-of-use",
}


def vary(headers: object) -> list[str]:
    return [v.strip().lower() for value in headers.getall("Vary", []) for v in value.split(",")]  # type: ignore[attr-defined]


def private(headers: object) -> bool:
    return headers.get("Cache-Control") == "no-store" and "authorization" in vary(headers)  # type: ignore[attr-defined]


# -- Cache-Control: no-store and Vary: Authorization ---------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/Patient/9000000009",
        "/Patient?family=Smith&birthdate=2010-10-22",
        "/Patient/9111231130",  # 404
        "/Patient/9000000000",
        "/Nothing/1",
        "/Patient/9000000009?_format=html",  # 400, 404, 406
    ],
)
async def test_fhir_answers_and_errors_are_private(fhir: CheckedClient, path: str) -> None:
    answer = await fhir.get(path)
    assert private(answer.headers), (path, answer.status, answer.headers)


async def test_not_modified_and_gzip_answers_are_private_and_keep_their_vary(fhir: CheckedClient) -> None:
    read = await fhir.get("/Patient/9000000009")
    again = await fhir.get("/Patient/9000000009", headers={"If-None-Match": read.headers["ETag"]})
    assert again.status == 304 and private(again.headers)
    bundle = await fhir.get(
        "/AllergyIntolerance?patient=9000000009&clinical-status=active,resolved&_include=AllergyIntolerance:patient",
        headers={"Accept-Encoding": "gzip"},
    )
    assert bundle.headers["Content-Encoding"] == "gzip"  # 4 KB or more: compressed, with its own Vary
    assert "accept-encoding" in vary(bundle.headers)
    assert private(bundle.headers) and vary(bundle.headers).count("authorization") == 1


async def test_pas_answers_and_errors_are_private(facade: FHIRClient) -> None:
    for path in ("/pas/v1/patients/H404", "/pas/v1/patients/not_a_number!"):
        status, headers, _ = await facade.get(path)
        assert status >= 400 and private(headers), path
    status, headers, _ = await facade.post(
        "/pas/v1/patients",
        json={
            "hospitalNumber": "H803",
            "surname": "Nobody",
            "forenames": "Known",
            "dateOfBirth": "01/01/1970",
            "sex": "U",
        },
    )
    assert status == 201 and private(headers)


@pytest.mark.parametrize("path", ["/metadata", "/openapi.json", "/_health"])
async def test_public_documents_are_left_alone(facade: FHIRClient, path: str) -> None:
    status, headers, _ = await facade.get(path, anonymous=True)
    assert status == 200 and "authorization" not in vary(headers)
    if path != "/_health":  # the health check says no-store itself (server/health.py)
        assert "Cache-Control" not in headers


# -- CORS ----------------------------------------------------------------------------------


async def test_cors_is_off_unless_configured(fhir: CheckedClient) -> None:
    answer = await fhir.get("/Patient/9000000009", headers={"Origin": ORIGIN})
    assert answer.status == 200 and not any(h.lower().startswith("access-control-") for h in answer.headers)
    preflight = await fhir.request("OPTIONS", "/Patient/9000000009", headers=PREFLIGHT)
    assert preflight.status == 405 and "Access-Control-Allow-Origin" not in preflight.headers


async def test_configured_origins_get_cors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, cors_allow_origins=[ORIGIN]) as url:
        async with http.options(url + "/Patient/9000000009", headers=PREFLIGHT) as resp:  # no token: browsers send none
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
            allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
            assert {
                "authorization",
                "content-type",
                "prefer",
                "if-match",
                "if-none-match",
                "x-request-id",
                "x-purpose-of-use",
            } <= allowed
            assert "Access-Control-Allow-Credentials" not in resp.headers
        answer = await CheckedClient(url, http).get("/Patient/9000000009", headers={"Origin": ORIGIN})
        assert answer.status == 200 and answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        exposed = {h.strip().lower() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
        assert exposed == {"etag", "location", "x-request-id"}
        assert {"origin", "authorization"} <= set(vary(answer.headers)) and private(answer.headers)
        error = await CheckedClient(url, http).get("/Patient/9000000000", headers={"Origin": ORIGIN})
        assert error.status == 400 and error.headers["Access-Control-Allow-Origin"] == ORIGIN
        # Another origin: a refused preflight is an OperationOutcome, and no CORS grant.
        refused = await CheckedClient(url, http).request(
            "OPTIONS", "/Patient/9000000009", headers={**PREFLIGHT, "Origin": "https://evil.example"}, anonymous=True
        )
        assert refused.status == 400 and refused.issue["code"] == "forbidden"
        assert "Access-Control-Allow-Origin" not in refused.headers
        other = await CheckedClient(url, http).get("/Patient/9000000009", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers


# -- X-Request-ID --------------------------------------------------------------------------


async def test_a_request_id_that_is_no_uuid_is_neither_echoed_logged_nor_sent_on(
    fhir: CheckedClient, emulator: Emulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    answer = await fhir.get("/Patient/9000000009", headers={"X-Request-ID": "nhs-9000000009-jane-smith"})
    minted = answer.headers["X-Request-ID"]
    assert uuid.UUID(minted).version == 4
    seen = (await upstream_requests(http, emulator))["context_headers"]
    assert seen[-1]["x-correlation-id"] == minted
    assert not any("9000000009" in record.getMessage() for record in caplog.records)


async def test_a_uuid_request_id_in_any_case_is_kept(fhir: CheckedClient, facade: FHIRClient) -> None:
    for client_id in ("0b7e8d0c-3c5e-4a57-9d0e-6f4f1c2a9e01", "0B7E8D0C-3C5E-4A57-9D0E-6F4F1C2A9E01"):
        assert (await fhir.get("/Patient/9000000009", headers={"X-Request-ID": client_id})).headers[
            "X-Request-ID"
        ] == client_id
        status, headers, error = await facade.get("/pas/v1/patients/H404", headers={"X-Request-ID": client_id})
        assert status == 404 and headers["X-Request-ID"] == client_id and error["requestId"] == client_id
