"""The registered UpstreamError handlers (server/nhs/error_handler.py for the FHIR app, pas_error
for the PAS sub-app), driven over ASGI: an upstream failure is answered exactly as the FHIRError
`to_fhir_error` maps it to: same status, same Retry-After / WWW-Authenticate, a valid
OperationOutcome (or the PAS error shape)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.fhir.error_handlers import EXCEPTION_HANDLERS
from server.fhir.responses import FHIRResponse
from server.nhs.errors import (
    UpstreamBadResponse,
    UpstreamCredentialsRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from server.nhs.refusals import CircuitOpen
from server.pas.routes import create_pas_app
from server.providers.error_handler import UPSTREAM_EXCEPTION_HANDLERS
from server.providers.upstream_errors import to_fhir_error
from server.sources.pds.client import PDSTooManyMatches
from tests.support.fhir_validation import validate_r4

REALM = 'Bearer realm="nhs-fhir-facade"'


def raising(err: Exception) -> Starlette:
    async def fail(request: Request) -> Response:
        raise err

    return Starlette(
        routes=[Route("/fail", fail)], exception_handlers={**EXCEPTION_HANDLERS, **UPSTREAM_EXCEPTION_HANDLERS}
    )


async def call(app: Any, *, accept: str = "*/*") -> tuple[int, dict[str, str], Any]:
    """One GET /fail over ASGI: status, headers (lower-case names) and the decoded body."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/fail",
        "raw_path": b"/fail",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"accept", accept.encode())],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "state": {"request_id": "req-1"},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, orjson.loads(body)


@pytest.mark.parametrize(
    "err, status, headers",
    [
        (UpstreamTimeout("PDS", "timed out"), 504, {"retry-after": "5"}),
        (UpstreamRateLimited("PDS", "HTTP 429", status=429, retry_after=7), 503, {"retry-after": "7"}),
        (UpstreamUnavailable("GP Connect", "HTTP 503", status=503, retry_after=12), 503, {"retry-after": "12"}),
        (CircuitOpen("CPT", "circuit open", retry_after=30), 503, {"retry-after": "30"}),
        (UpstreamUnavailable("BaRS", "HTTP 500", status=500), 502, {}),
        (UpstreamBadResponse("e-RS", "not JSON"), 502, {}),
        (
            UpstreamCredentialsRejected("CPT", "token exchange refused", status=401, user_token_used=True),
            401,
            {"www-authenticate": REALM},
        ),
        (UpstreamRejected("CPT", "HTTP 401", status=401, user_token_used=True), 401, {"www-authenticate": REALM}),
        (
            UpstreamRejected(
                "PDS", "HTTP 404", status=404, nhs_code="RESOURCE_NOT_FOUND", nhs_display="Resource not found"
            ),
            404,
            {},
        ),
        (PDSTooManyMatches("PDS", "too many", status=200, nhs_code="TOO_MANY_MATCHES"), 422, {}),
    ],
)
async def test_an_upstream_error_is_answered_as_the_fhir_error_it_maps_to(
    err: UpstreamError, status: int, headers: dict[str, str]
) -> None:
    got_status, got_headers, body = await call(raising(err))
    mapped = to_fhir_error(err)
    assert got_status == status == mapped.status
    assert headers.items() <= got_headers.items()  # Retry-After, WWW-Authenticate survive
    assert got_headers["content-type"] == "application/fhir+json; charset=utf-8"
    assert body == orjson.loads(FHIRResponse(mapped.outcome()).body)  # what raising `mapped` would answer
    validate_r4(body)
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"


async def test_the_nhs_error_code_stays_visible_in_the_outcome() -> None:
    err = UpstreamRejected(
        "PDS", "HTTP 404", status=404, nhs_code="RESOURCE_NOT_FOUND", nhs_display="Resource not found"
    )
    _, _, body = await call(raising(err))
    assert body["issue"][0]["details"]["coding"][0]["code"] == "RESOURCE_NOT_FOUND"


def raising_in_pas(err: Exception) -> Starlette:
    """A route raising `err` behind the PAS sub-app's own exception handlers."""

    async def fail(request: Request) -> Response:
        raise err

    return Starlette(routes=[Route("/fail", fail)], exception_handlers=create_pas_app().exception_handlers)


async def test_the_pas_sub_app_answers_an_upstream_error_in_the_pas_shape() -> None:
    err = UpstreamRateLimited("GP Connect", "HTTP 429", status=429, retry_after=7)
    status, headers, body = await call(raising_in_pas(err))
    assert status == 503 and headers["retry-after"] == "7"
    assert body["requestId"] == "req-1"
    [problem] = body["errors"]
    assert problem["field"] is None and "GP Connect" in problem["reason"]


async def test_the_pas_sub_app_answers_an_upstream_error_as_an_outcome_to_a_fhir_caller() -> None:
    err = UpstreamTimeout("GP Connect", "timed out")
    status, headers, body = await call(raising_in_pas(err), accept="application/fhir+json")
    assert status == 504 and headers["retry-after"] == "5"
    validate_r4(body)
    assert body["resourceType"] == "OperationOutcome"
