"""The BaRS FHIR R4 emulator: ServiceRequest search by patient and read, per target.

Enforces what the BaRS proxy enforces (reference: nhs-apis.md s.2.5 and the BaRS proxy
tests): X-Request-ID and X-Correlation-ID are UUIDs; NHSD-Target-Identifier is base64 of
JSON with `system` and `value` (undecodable: 400 PROXY_BAD_REQUEST "The base64 decoding
of the NHSD-Target-Identifier header failed."; an unknown target: 404); the
NHSD-End-User-Organisation and NHSD-Requesting-Software headers are base64 JSON
Organization and Device; Accept is application/fhir+json with a version. Errors are
BaRS OperationOutcomes (https://fhir.nhs.uk/CodeSystem/http-error-codes).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.nhs.nhs_number import is_valid_nhs_number
from server.sandbox.outcome import nhs_error
from server.sandbox.searchset import searchset
from server.sources.referrals.bars_emulator_data import NHS, REFERRALS

HTTP_ERRORS = "https://fhir.nhs.uk/CodeSystem/http-error-codes"
OUTCOME_META = {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"]}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def bars_error(status: int, code: str, issue_code: str, diagnostics: str) -> Response:
    return nhs_error(
        status, system=HTTP_ERRORS, code=code, issue_code=issue_code, diagnostics=diagnostics, meta=OUTCOME_META
    )


def decode_b64_json(value: str | None) -> Any:
    """The JSON a base64 header carries, or None when it is absent or not base64 JSON."""
    if not value:
        return None
    try:
        return json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


def _check_headers(request: Request) -> tuple[tuple[str, str] | None, Response | None]:
    """(target, None) when the headers are acceptable, else (None, error response)."""
    h = request.headers
    for name in ("x-request-id", "x-correlation-id"):
        if not UUID_RE.match(h.get(name, "")):
            return None, bars_error(400, "SEND_BAD_REQUEST", "value", f"Header '{name}' must be a UUID")
    accept = h.get("accept", "")
    if "application/fhir+json" not in accept or "version=" not in accept:
        return None, bars_error(
            406,
            "SEND_NOT_ACCEPTABLE",
            "not-supported",
            "Accept must be application/fhir+json; version=<BaRS API version>",
        )
    target = decode_b64_json(h.get("nhsd-target-identifier"))
    if not isinstance(target, dict):
        return None, bars_error(
            400, "PROXY_BAD_REQUEST", "invalid", "The base64 decoding of the NHSD-Target-Identifier header failed."
        )
    if not target.get("system") or not target.get("value"):
        return None, bars_error(
            400, "PROXY_BAD_REQUEST", "invalid", "NHSD-Target-Identifier must have a system and a value"
        )
    for name, rtype in (("nhsd-end-user-organisation", "Organization"), ("nhsd-requesting-software", "Device")):
        decoded = decode_b64_json(h.get(name))
        if not isinstance(decoded, dict) or decoded.get("resourceType") != rtype:
            return None, bars_error(
                400, "SEND_BAD_REQUEST", "required", f"Header '{name}' must be a base64 encoded FHIR {rtype}"
            )
    key = (str(target["system"]), str(target["value"]))
    if key not in REFERRALS:
        return None, bars_error(
            404, "PROXY_NOT_FOUND", "not-found", "The NHSD-Target-Identifier does not name a known service"
        )
    return key, None


def _mirror(request: Request) -> dict[str, str]:
    return {
        "X-Request-ID": request.headers.get("x-request-id", ""),
        "X-Correlation-ID": request.headers.get("x-correlation-id", ""),
    }


async def search_service_requests(request: Request) -> Response:
    target, bad = _check_headers(request)
    if bad:
        return bad
    assert target is not None
    values = request.query_params.getlist("patient:identifier")
    if len(values) != 1:
        return bars_error(
            400,
            "SEND_BAD_REQUEST",
            "required",
            "patient:identifier=https://fhir.nhs.uk/Id/nhs-number|<NHS number> is required",
        )
    system, _, nhs = values[0].partition("|")
    if system != NHS or not is_valid_nhs_number(nhs):
        return bars_error(400, "SEND_BAD_REQUEST", "value", "patient:identifier must be a valid NHS number")
    bundle = searchset(request, REFERRALS[target].get(nhs, []), "ServiceRequest")
    return JSONResponse(bundle, headers=_mirror(request), media_type="application/fhir+json")


async def read_service_request(request: Request) -> Response:
    target, bad = _check_headers(request)
    if bad:
        return bad
    assert target is not None
    rid = request.path_params["id"]
    for referrals in REFERRALS[target].values():
        for referral in referrals:
            if referral["id"] == rid:
                return JSONResponse(
                    referral, headers={**_mirror(request), "ETag": 'W/"1"'}, media_type="application/fhir+json"
                )
    return bars_error(404, "REC_NOT_FOUND", "not-found", "the resource requested was not found.")


ROUTES = [
    Route("/ServiceRequest", search_service_requests, methods=["GET"]),
    Route("/ServiceRequest/{id}", read_service_request, methods=["GET"]),
]
