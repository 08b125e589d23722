"""The e-RS FHIR emulator: A041 R4 ServiceRequest search by UBRN and A005 STU3
ReferralRequest read, mounted at /referrals/FHIR like the real API.

Enforces (reference: nhs-apis.md s.2.4 and the e-RS sandbox's businessFunctionValidator):
X-Request-ID present; A041 is user-restricted, so NHSD-eRS-Business-Function and
NHSD-End-User-Organisation-ODS are required and the business function must be one A041
allows (403 otherwise); A005 checks a business function only when one is sent. R4
errors are NHSDigital-OperationOutcomes (http-error-codes), STU3 errors
eRS-OperationOutcome-1 (eRS-APIErrorCode-1). An unknown UBRN is an empty searchset in
R4 (as the sandbox's 000000070003) and a 404 in STU3.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.sandbox.outcome import nhs_error
from server.sandbox.searchset import searchset
from server.sources.referrals.ers_emulator_data import R4_BY_UBRN, STU3_BY_UBRN, UBRN

HTTP_ERRORS = "https://fhir.nhs.uk/CodeSystem/http-error-codes"
STU3_ERRORS = "https://fhir.nhs.uk/STU3/CodeSystem/eRS-APIErrorCode-1"
A041_FUNCTIONS = (
    "REFERRING_CLINICIAN",
    "REFERRING_CLINICIAN_ADMIN",
    "SERVICE_PROVIDER_CLINICIAN",
    "SERVICE_PROVIDER_CLINICIAN_ADMIN",
)
UBRN_RE = re.compile(r"^[0-9]{12}$")


def r4_error(status: int, code: str, issue_code: str, diagnostics: str) -> Response:
    meta = {"lastUpdated": "2024-01-01T00:00:00Z"}
    return nhs_error(status, system=HTTP_ERRORS, code=code, issue_code=issue_code, diagnostics=diagnostics, meta=meta)


def stu3_error(status: int, code: str, issue_code: str, diagnostics: str) -> Response:
    meta = {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/eRS-OperationOutcome-1"]}
    return nhs_error(status, system=STU3_ERRORS, code=code, issue_code=issue_code, diagnostics=diagnostics, meta=meta)


def _mirror(request: Request) -> dict[str, str]:
    out = {"X-Request-ID": request.headers.get("x-request-id", "")}
    if "x-correlation-id" in request.headers:
        out["X-Correlation-ID"] = request.headers["x-correlation-id"]
    return out


async def search_service_requests(request: Request) -> Response:
    h = request.headers
    if not h.get("x-request-id"):
        return r4_error(400, "REC_BAD_REQUEST", "required", "X-Request-ID header is required")
    function = h.get("nhsd-ers-business-function")
    if not function or not h.get("nhsd-end-user-organisation-ods"):
        return r4_error(
            400,
            "REC_BAD_REQUEST",
            "required",
            "NHSD-eRS-Business-Function and NHSD-End-User-Organisation-ODS headers are required",
        )
    if function not in A041_FUNCTIONS:
        return r4_error(
            403,
            "REC_FORBIDDEN",
            "forbidden",
            f"This endpoint cannot be accessed using the e-RS Business Function provided. "
            f"Allowed values: {','.join(A041_FUNCTIONS)}",
        )
    values = request.query_params.getlist("identifier")
    if len(values) != 1:
        return r4_error(400, "REC_BAD_REQUEST", "required", "identifier=<UBRN> is required")
    system, bar, ubrn = values[0].rpartition("|")
    if (bar and system != UBRN) or not UBRN_RE.match(ubrn):
        return r4_error(400, "REC_BAD_REQUEST", "value", "identifier must be a UBRN")
    bundle = searchset(request, R4_BY_UBRN.get(ubrn, []), "R4/ServiceRequest")
    return JSONResponse(bundle, headers=_mirror(request), media_type="application/fhir+json")


async def read_referral_request(request: Request) -> Response:
    h = request.headers
    if not h.get("x-request-id"):
        return stu3_error(400, "MISSING_HEADER", "required", "X-Request-ID header is required")
    function = h.get("nhsd-ers-business-function")
    if function and function not in A041_FUNCTIONS:
        return stu3_error(
            403,
            "ACCESS_DENIED",
            "forbidden",
            "This endpoint cannot be accessed using the e-RS Business Function provided",
        )
    ubrn = request.path_params["ubrn"]
    if not UBRN_RE.match(ubrn):
        return stu3_error(400, "INVALID_PARAMETER", "value", "The UBRN must be twelve digits")
    referral = STU3_BY_UBRN.get(ubrn)
    if referral is None:
        return stu3_error(404, "REFERRAL_NOT_FOUND", "not-found", "Referral not found")
    return JSONResponse(referral, headers={**_mirror(request), "ETag": 'W/"5"'}, media_type="application/fhir+json")


ROUTES = [
    Route("/R4/ServiceRequest", search_service_requests, methods=["GET"]),
    Route("/STU3/ReferralRequest/{ubrn}", read_referral_request, methods=["GET"]),
]
