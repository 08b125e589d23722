"""Translated REST for legacy PAS (`/pas/v1/...`): the route table and thin handlers.

A Starlette sub-application, mounted by the composition root, so its errors are in the
PAS error shape (server.pas.errors) while the FHIR side keeps OperationOutcomes; the
main app's middleware (request ids, and auth and audit when they exist) wraps it too.
A caller that accepts only `application/fhir+json` gets errors as OperationOutcomes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mappings.engine import Problem
from server.access.control import AccessControl
from server.fhir.errors import FHIRError
from server.nhs.errors import CallerInputError, UpstreamError
from server.pas.errors import PASError
from server.pas.hl7_intake import HL7Intake
from server.pas.json_depth import MAX_JSON_DEPTH, nested_deeper_than
from server.pas.records import audit_references, document
from server.pas.service import RELATED, PASService, Written
from server.providers.base import RequestContext
from server.providers.failures import PROVIDER_FAILURES, as_fhir_error

HOSPITAL_NUMBER = re.compile(r"^[A-Za-z0-9]{1,20}$")
JSON = "application/json"
HL7_MEDIA = "application/hl7-v2"


@dataclass(frozen=True)
class PASRuntime:
    """What the PAS handlers need, set on the sub-app's state by the composition root."""

    service: PASService
    intake: HL7Intake
    base_url: str


class PASResponse(Response):
    media_type = f"{JSON}; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _runtime(request: Request) -> PASRuntime:
    runtime: PASRuntime = request.app.state.pas
    return runtime


def _context(request: Request, action: str, resource_type: str, permissions: str) -> RequestContext:
    """The caller's context, once the access policy lets them do `action` (a role of the
    role table's `pas` list, and a user/ or system/ scope granting `permissions` on the
    FHIR type the endpoint stands for); else a 403 in the PAS error shape."""
    access: AccessControl = request.state.access
    principal = request.state.principal
    access.policy.require_pas(principal, action, resource_type, permissions)
    auth = request.headers.get("authorization", "")
    inbound = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    return RequestContext(
        request_id=request.state.request_id,
        base_url=_runtime(request).base_url,
        user_token=access.nhs_user_token(request.headers, inbound),
        headers=request.headers,
        principal=principal,
        quota=access.quota,
        trace=request.state.trace,  # set by server.fhir.middleware.RequestIdMiddleware
    )


def _audit_patient(request: Request, hospital_number: str, nhs_number: str | None) -> None:
    """Name the PAS patient this request touched in its AuditEvent (server.pas.records.audit_references)."""
    request.state.audit.saw(*audit_references(hospital_number, nhs_number))


CLINICAL_LISTS = ("allergies", "medications")


def _may(request: Request, action: str) -> bool:
    access: AccessControl = request.state.access
    return access.table.pas_allows(request.state.principal.roles, action)


def _shown(request: Request, doc: dict[str, Any]) -> dict[str, Any]:
    """The PAS document as this caller may see it: the clinical lists only for a role with
    `related.read` (a clerk registers patients but reads no allergies or medications)."""
    if _may(request, "related.read"):
        return doc
    return {k: v for k, v in doc.items() if k not in CLINICAL_LISTS}


async def _clinical_write_checked(request: Request, body: Any, hospital_number: str | None) -> Any:
    """A write by a role without `clinical.write` may not carry clinical lists; on an update
    the stored lists are kept (the caller never saw them, so a whole-record PUT must not
    wipe them)."""
    if _may(request, "clinical.write") or not isinstance(body, dict):
        return body
    if any(body.get(k) for k in CLINICAL_LISTS):
        raise PASError(403, "None of the caller's roles may write allergies or medications (clinical.write)")
    if hospital_number is None:
        return body
    stored = await _runtime(request).service.stored(hospital_number)
    kept = {"allergies": list(stored.allergies), "medications": list(stored.medications)}
    return {**{k: v for k, v in body.items() if k not in CLINICAL_LISTS}, **{k: v for k, v in kept.items() if v}}


def _hospital_number(request: Request) -> str:
    hn = request.path_params["hn"]
    if not HOSPITAL_NUMBER.match(hn):
        raise PASError(
            400, problems=[Problem("hospitalNumber", hn[:40], "not a hospital number (1-20 letters or digits)")]
        )
    return str(hn)


async def _json_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    if ctype not in (JSON, "application/fhir+json") and not ctype.endswith("+json"):
        raise PASError(415, f"send the record as {JSON}, not {ctype}")
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PASError(400, "the body is not valid JSON") from None
    if nested_deeper_than(body, MAX_JSON_DEPTH):
        # Refused here: such a value, echoed in a field problem, could not even be rendered.
        raise PASError(400, f"the body nests lists or objects more than {MAX_JSON_DEPTH} levels deep")
    return body


def _written_headers(request: Request, written: Written) -> dict[str, str]:
    hn = written.stored.hospital_number
    headers = {"ETag": written.stored.etag, "Location": f"{_runtime(request).base_url}/pas/v1/patients/{hn}"}
    if written.trace is not None:
        headers["X-NHS-Trace"] = written.trace.header()
    elif written.trace_error:
        headers["X-NHS-Trace"] = f"status=03; result={written.trace_error}"
    return headers


async def register_patient(request: Request) -> Response:
    ctx = _context(request, "patients.write", "Patient", "c")
    body = await _clinical_write_checked(request, await _json_body(request), None)
    service = _runtime(request).service
    written = await service.register(body, ctx)
    _audit_patient(request, written.stored.hospital_number, written.stored.nhs_number)
    record = service.written_record(written.stored)
    return PASResponse(
        _shown(request, document(written.stored, record)), status_code=201, headers=_written_headers(request, written)
    )


async def read_patient(request: Request) -> Response:
    service = _runtime(request).service
    ctx = _context(request, "patients.read", "Patient", "r")
    view = await service.view(_hospital_number(request), ctx)
    _audit_patient(request, view.stored.hospital_number, view.stored.nhs_number)
    record, unmapped = service.pas_record(view)
    headers = {"ETag": view.stored.etag, "X-PDS-Refresh": view.refresh}
    if unmapped:
        headers["X-Unmapped-Fields"] = ",".join(sorted({p.path for p in unmapped}))
    return PASResponse(_shown(request, document(view.stored, record)), headers=headers)


# PAS ETags are W/"<version>": ASCII digits only (\d and int() also take non-ASCII
# digits), at most 18 of them, so int() never meets Python's int-string limit.
IF_MATCH_ETAG = re.compile(r'\s*(?:W/)?"([0-9]{1,18})"\s*', re.ASCII)


def if_match_version(header: str) -> int | None:
    """The record version an If-Match header names, or None when it names none."""
    match = IF_MATCH_ETAG.fullmatch(header)
    return int(match.group(1)) if match else None


def _if_match(request: Request) -> int:
    header = request.headers.get("if-match")
    if header is None:
        raise PASError(428, "PUT needs If-Match with the ETag of the record you read")
    version = if_match_version(header)
    if version is None:
        raise PASError(412, f"If-Match {header[:40]!r} is not an ETag of this record")
    return version


async def update_patient(request: Request) -> Response:
    ctx = _context(request, "patients.write", "Patient", "u")
    hn = _hospital_number(request)
    version = _if_match(request)
    body = await _clinical_write_checked(request, await _json_body(request), hn)
    service = _runtime(request).service
    written = await service.update(hn, body, version, ctx)
    _audit_patient(request, written.stored.hospital_number, written.stored.nhs_number)
    headers = _written_headers(request, written)
    headers.pop("Location")
    return PASResponse(
        _shown(request, document(written.stored, service.written_record(written.stored))), headers=headers
    )


async def related_records(request: Request) -> Response:
    hn = _hospital_number(request)
    kind = request.path_params["kind"]
    if kind not in RELATED:
        raise PASError(404, f"no PAS endpoint '{kind[:40]}' (allergies, medications, referrals)")
    ctx = _context(request, "related.read", RELATED[kind], "r")
    request.state.audit.resource_type = RELATED[kind]
    request.state.audit.interaction = "search-type"  # a list of the patient's records
    service = _runtime(request).service
    stored = await service.stored(hn)
    _audit_patient(request, stored.hospital_number, stored.nhs_number)
    items = []
    for related in await service.related(hn, kind, ctx):
        item = {**related.record, "source": related.source}
        if related.unmapped:
            item["unmapped"] = [{"field": p.path, "value": p.value, "reason": p.reason} for p in related.unmapped]
        items.append(item)
    return PASResponse({"hospitalNumber": hn, kind: items})


async def hl7_message(request: Request) -> Response:
    ctx = _context(request, "hl7", "Patient", "cu")
    ack = await _runtime(request).intake.handle(
        await request.body(), ctx, touched=lambda hn, nhs: _audit_patient(request, hn, nhs)
    )
    return Response(ack, media_type=f"{HL7_MEDIA}; charset=utf-8")


def _wants_fhir(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/fhir+json" in accept and JSON not in accept.replace("application/fhir+json", "")


async def pas_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PROVIDER_FAILURES):  # an upstream failure answers with the status the FHIR side gives it
        exc = PASError.from_fhir(as_fhir_error(exc))
    elif isinstance(exc, HTTPException):
        reason = (
            "no PAS endpoint at this path"
            if exc.status_code == 404
            else f"{request.method} is not supported here"
            if exc.status_code == 405
            else str(exc.detail)
        )
        exc = PASError(exc.status_code, reason, headers=dict(exc.headers or {}))
    assert isinstance(exc, PASError)
    if _wants_fhir(request):
        return Response(
            orjson.dumps(exc.outcome()),
            status_code=exc.status,
            headers=exc.headers,
            media_type="application/fhir+json; charset=utf-8",
        )
    return PASResponse(exc.body(request.state.request_id), status_code=exc.status, headers=exc.headers)


ROUTES = [
    Route("/patients", register_patient, methods=["POST"]),
    Route("/patients/{hn}", read_patient, methods=["GET"]),
    Route("/patients/{hn}", update_patient, methods=["PUT"]),
    Route("/patients/{hn}/{kind}", related_records, methods=["GET"]),
    Route("/hl7", hl7_message, methods=["POST"]),
]


def create_pas_app() -> Starlette:
    """The /pas/v1 sub-application; the composition root sets `state.pas` in its lifespan."""
    # Its own handlers, UpstreamError included: the main app's would come too late (the sub-app's
    # ServerErrorMiddleware has already answered an unhandled error with a plain-text 500).
    return Starlette(
        routes=ROUTES,
        exception_handlers={
            PASError: pas_error,
            FHIRError: pas_error,
            UpstreamError: pas_error,
            CallerInputError: pas_error,
            HTTPException: pas_error,
        },
    )
