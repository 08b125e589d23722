"""CORS for browser apps, off unless origins are configured (`FACADE_CORS_ALLOW_ORIGINS`).

Starlette's CORSMiddleware does the work; the façade fixes what a browser FHIR client
needs: its request headers (bearer token, FHIR preferences, conditional requests,
correlation, purpose of use) and the response headers it must read (ETag for
conditional updates, Location, X-Request-ID to quote in a report). A refused preflight
is an OperationOutcome like every other error, not Starlette's plain-text 400.
Credentials mode stays off: the façade reads bearer tokens, never cookies.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from server.fhir.outcome import issue, operation_outcome
from server.fhir.responses import FHIRResponse

ALLOW_METHODS = ("GET", "HEAD", "POST", "PUT")
ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Prefer",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
    "X-Purpose-Of-Use",
)
EXPOSE_HEADERS = ("ETag", "Location", "X-Request-ID")


class FHIRCORSMiddleware(CORSMiddleware):
    """CORSMiddleware whose refused preflights answer an OperationOutcome."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        kept = {k: v for k, v in response.headers.items() if k.startswith("access-control-") or k == "vary"}
        reason = bytes(response.body).decode("utf-8", "replace")
        outcome = operation_outcome(
            issue("forbidden", f"{reason}: this origin, method or header is not allowed by FACADE_CORS_ALLOW_ORIGINS")
        )
        return FHIRResponse(outcome, status_code=400, headers=kept)


def cors_middleware(origins: Sequence[str]) -> list[Middleware]:
    """The CORS middleware for `origins`, or none at all when the list is empty."""
    if not origins:
        return []
    return [
        Middleware(
            FHIRCORSMiddleware,
            allow_origins=list(origins),
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            expose_headers=EXPOSE_HEADERS,
        )
    ]
