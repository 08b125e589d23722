"""The GP Connect Access Record Structured emulator: POST Patient/$gpc.getstructuredrecord.

Enforces what a GP Connect provider behind the Spine Secure Proxy enforces (GP Connect
error handling guidance; shared/reference/nhs-apis.md s.2.7), on synthetic data
(server/sources/gpconnect/emulator_data.py):
- SSP route: Ssp-TraceID (UUID), Ssp-From, Ssp-To, Ssp-InteractionID (403 when it is not
  the structured-record interaction), and the consumer JWT (unsigned, alg none, exp =
  iat + 5 min, directcare, patient/*.read, requesting device/organisation/practitioner,
  the practitioner identified: an SDS user id identifier (a value, or UNK together with
  a local user identifier), every identifier with a system and a value); the decoded
  claims are recorded for tests (GET /_control/gpconnect/jwt);
  gateway route (Clinical Data Gateway): a bearer token, Ssp-TraceID and Ods-from;
- body: a Parameters resource; patientNHSNumber with the NHS number system and a
  Modulus-11 valid value; includeAllergies needs includeResolvedAllergies;
- errors are GP Connect OperationOutcomes with Spine codes: BAD_REQUEST,
  INVALID_RESOURCE, INVALID_PARAMETER, INVALID_IDENTIFIER_SYSTEM, INVALID_NHS_NUMBER,
  PATIENT_NOT_FOUND, NO_PATIENT_CONSENT.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.nhs.nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number
from server.sources.gpconnect.client import INTERACTION_ID
from server.sources.gpconnect.consumer_jwt import (
    LIFETIME_SECONDS,
    READ_SCOPE,
    SDS_ROLE_PROFILE_ID,
    SDS_USER_ID,
    UNKNOWN,
    decode_unsigned_jwt,
)
from server.sources.gpconnect.emulator_data import NO_CONSENT, structured_record

SPINE_STU3 = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
OUTCOME_PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-OperationOutcome-1"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
KNOWN_PARAMETERS = {
    "patientNHSNumber",
    "includeAllergies",
    "includeMedication",
    "includeConsultations",
    "includeProblems",
    "includeImmunisations",
    "includeUncategorisedData",
    "includeInvestigations",
    "includeReferrals",
}
_DISPLAYS = {
    "BAD_REQUEST": "Bad request",
    "INVALID_RESOURCE": "Submitted resource is not valid.",
    "INVALID_PARAMETER": "Submitted parameter is not valid.",
    "INVALID_IDENTIFIER_SYSTEM": "Invalid identifier system",
    "INVALID_NHS_NUMBER": "NHS Number invalid",
    "PATIENT_NOT_FOUND": "Patient record not found",
    "NO_PATIENT_CONSENT": "No Patient Consent To Share",
}
_ISSUE_CODES = {
    "BAD_REQUEST": "invalid",
    "INVALID_RESOURCE": "invalid",
    "INVALID_PARAMETER": "invalid",
    "INVALID_IDENTIFIER_SYSTEM": "value",
    "INVALID_NHS_NUMBER": "value",
    "PATIENT_NOT_FOUND": "not-found",
    "NO_PATIENT_CONSENT": "forbidden",
}


def gpc_error(status: int, code: str | None, diagnostics: str, issue_code: str | None = None) -> Response:
    """A GP Connect OperationOutcome; `code` None = an SSP error (no Spine code)."""
    issue: dict[str, Any] = {
        "severity": "error",
        "code": issue_code or _ISSUE_CODES.get(code or "", "invalid"),
        "diagnostics": diagnostics,
    }
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [issue]}
    if code:
        body["meta"] = {"profile": [OUTCOME_PROFILE]}
        issue["details"] = {"coding": [{"system": SPINE_STU3, "code": code, "display": _DISPLAYS[code]}]}
    return JSONResponse(body, status_code=status, media_type="application/fhir+json")


def _check_jwt(authorization: str) -> str | None:
    """None when the consumer JWT is acceptable, else what is wrong with it."""
    if not authorization.lower().startswith("bearer "):
        return "Authorization header must be 'Bearer <JWT>'"
    try:
        header, claims = decode_unsigned_jwt(authorization[7:].strip())
    except ValueError as exc:
        return f"Authorization JWT: {exc}"
    if header.get("alg") != "none":
        return "JWT alg must be 'none'"
    missing = [
        c
        for c in (
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "reason_for_request",
            "requested_scope",
            "requesting_device",
            "requesting_organization",
            "requesting_practitioner",
        )
        if c not in claims
    ]
    if missing:
        return f"JWT claims missing: {', '.join(missing)}"
    if not isinstance(claims["iat"], int) or claims["exp"] != claims["iat"] + LIFETIME_SECONDS:
        return "JWT exp must be iat + 300 seconds"
    if claims["reason_for_request"] != "directcare" or claims["requested_scope"] != READ_SCOPE:
        return "JWT reason_for_request must be 'directcare' and requested_scope 'patient/*.read'"
    for claim, rtype in (
        ("requesting_device", "Device"),
        ("requesting_organization", "Organization"),
        ("requesting_practitioner", "Practitioner"),
    ):
        if not isinstance(claims[claim], dict) or claims[claim].get("resourceType") != rtype:
            return f"JWT {claim} must be a {rtype} resource"
    if claims["requesting_practitioner"].get("id") != claims["sub"]:
        return "JWT sub must equal requesting_practitioner.id"
    return _practitioner_problem(claims["requesting_practitioner"])


def _practitioner_problem(practitioner: dict[str, Any]) -> str | None:
    """GP Connect: the logged-on user's SDS user id (UNK without a smartcard), then a
    local user id; a practitioner nobody can identify makes the GP audit worthless."""
    identifiers = practitioner.get("identifier")
    if not isinstance(identifiers, list) or not identifiers:
        return "JWT requesting_practitioner must have an identifier"
    if not all(
        isinstance(i, dict)
        and isinstance(i.get("system"), str)
        and i["system"]
        and isinstance(i.get("value"), str)
        and i["value"]
        for i in identifiers
    ):
        return "JWT requesting_practitioner identifiers need a system and a value"
    sds = [i["value"] for i in identifiers if i["system"] == SDS_USER_ID]
    if len(sds) != 1:
        return f"JWT requesting_practitioner needs one {SDS_USER_ID} identifier (UNK without a smartcard)"
    local = [i for i in identifiers if i["system"] not in (SDS_USER_ID, SDS_ROLE_PROFILE_ID)]
    if sds[0] == UNKNOWN and not local:
        return "JWT requesting_practitioner without an SDS user id needs a local user identifier"
    return None


def _record_claims(request: Request, authorization: str) -> None:
    """Keep the decoded consumer JWT claims (the last 50) for GET /_control/gpconnect/jwt."""
    state = getattr(request.app.state, "emulator", None)
    if state is None or not authorization.lower().startswith("bearer "):
        return
    try:
        _, claims = decode_unsigned_jwt(authorization[7:].strip())
    except ValueError:
        return
    state.gpconnect_jwt_claims.append(claims)
    del state.gpconnect_jwt_claims[:-50]


def _check_headers(request: Request) -> Response | None:
    h = request.headers
    trace = h.get("ssp-traceid", "")
    if not UUID_RE.match(trace):
        return gpc_error(400, "BAD_REQUEST", "Ssp-TraceID header must be a UUID")
    if "ssp-interactionid" in h or "ssp-from" in h or "ssp-to" in h:
        if not h.get("ssp-from") or not h.get("ssp-to") or not h.get("ssp-interactionid"):
            return gpc_error(400, "BAD_REQUEST", "Ssp-From, Ssp-To and Ssp-InteractionID headers are required")
        if h["ssp-interactionid"] != INTERACTION_ID:
            return gpc_error(403, None, "Ssp-InteractionID does not match the operation", issue_code="forbidden")
        _record_claims(request, h.get("authorization", ""))
        problem = _check_jwt(h.get("authorization", ""))
        if problem:
            return gpc_error(400, "BAD_REQUEST", problem)
        return None
    # Clinical Data Gateway route: a CIS2 token, checked by the platform (not emulated).
    if not h.get("authorization", "").lower().startswith("bearer ") or len(h["authorization"]) <= 7:
        return gpc_error(401, None, "Missing or invalid bearer token", issue_code="login")
    if not h.get("ods-from"):
        return gpc_error(400, "BAD_REQUEST", "Ods-from header is required")
    return None


def _parameters(body: Any) -> tuple[str, bool | None] | Response:
    """(NHS number, includeResolvedAllergies or None when allergies were not asked for)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        return gpc_error(422, "INVALID_RESOURCE", "Body must be a Parameters resource")
    params = body.get("parameter")
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        return gpc_error(422, "INVALID_RESOURCE", "Parameters.parameter must be a list")
    names = [p.get("name") for p in params]
    unknown = sorted({str(n) for n in names} - KNOWN_PARAMETERS)
    if unknown:
        return gpc_error(422, "INVALID_PARAMETER", f"Unknown parameter(s): {', '.join(unknown)}")
    if names.count("patientNHSNumber") != 1 or any(names.count(n) > 1 for n in set(names)):
        return gpc_error(422, "INVALID_PARAMETER", "patientNHSNumber is required once; no parameter may repeat")
    ident = next(p for p in params if p["name"] == "patientNHSNumber").get("valueIdentifier")
    if not isinstance(ident, dict):
        return gpc_error(422, "INVALID_PARAMETER", "patientNHSNumber needs a valueIdentifier")
    if ident.get("system") != NHS_NUMBER_SYSTEM:
        return gpc_error(400, "INVALID_IDENTIFIER_SYSTEM", f"Identifier system must be {NHS_NUMBER_SYSTEM}")
    nhs = str(ident.get("value", ""))
    if not is_valid_nhs_number(nhs):
        return gpc_error(400, "INVALID_NHS_NUMBER", "NHS number is not valid")
    allergies = next((p for p in params if p["name"] == "includeAllergies"), None)
    if allergies is None:
        return nhs, None
    parts = allergies.get("part") or []
    resolved = [p for p in parts if isinstance(p, dict) and p.get("name") == "includeResolvedAllergies"]
    if len(resolved) != 1 or not isinstance(resolved[0].get("valueBoolean"), bool) or len(parts) != 1:
        return gpc_error(
            422,
            "INVALID_PARAMETER",
            "includeAllergies needs exactly one part includeResolvedAllergies with a valueBoolean",
        )
    return nhs, resolved[0]["valueBoolean"]


async def get_structured_record(request: Request) -> Response:
    bad = _check_headers(request)
    if bad:
        return bad
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/fhir+json":
        return gpc_error(415, None, "Content-Type must be application/fhir+json", issue_code="not-supported")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return gpc_error(400, "BAD_REQUEST", "Body is not JSON")
    parsed = _parameters(body)
    if isinstance(parsed, Response):
        return parsed
    nhs, include_resolved = parsed
    if nhs in NO_CONSENT:
        return gpc_error(403, "NO_PATIENT_CONSENT", "The patient has dissented from sharing")
    record = structured_record(nhs, bool(include_resolved))
    if record is None:
        return gpc_error(404, "PATIENT_NOT_FOUND", "No GP record for this patient")
    if include_resolved is None:  # allergies not asked for: only the patient and practice
        record["entry"] = [
            e for e in record["entry"] if e["resource"]["resourceType"] not in ("List", "AllergyIntolerance")
        ]
    return JSONResponse(record, media_type="application/fhir+json")


ROUTES = [Route("/Patient/$gpc.getstructuredrecord", get_structured_record, methods=["POST"])]
