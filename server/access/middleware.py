"""The access edge (pure ASGI): authenticate every caller, and audit every access.

Every path except the public discovery documents (/metadata, the SMART configuration,
/openapi.json), the health probes (/_health, /_health/live, /_health/ready) and /metrics
(which checks its own scrape secret) needs a verified bearer token: none, or a bad one, is a 401
with `WWW-Authenticate` and an OperationOutcome that says no more than that. The
principal goes into the request state for the handlers, which decide scopes, roles,
purpose and relationship (server.access.policy) and note what they returned.

Each such request, allowed or refused, leaves exactly one AuditEvent, written before
the response starts: if the audit trail can take it nowhere, the caller gets a 503
instead of the answer (fail closed), so no access goes unrecorded.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import request_trace
from server.access.audit_event import AuditNote, interaction_of
from server.access.claims import BadPurpose
from server.access.control import AccessControl
from server.access.principal import Principal
from server.access.tokens import InvalidToken
from server.fhir.outcome import issue, operation_outcome

log = logging.getLogger("facade.access")

# /metrics guards itself with its own static secret (server/metrics_endpoint.py).
PUBLIC_PATHS = frozenset(
    {
        "/metadata",
        "/.well-known/smart-configuration",
        "/openapi.json",
        "/_health",
        "/_health/live",
        "/_health/ready",
        "/metrics",
        # The console's page and its data-free API (server/console/routes.py); its traces
        # and fault controls stay behind this edge. With the console off these are 404s.
        "/_console",
        "/_console/",
        "/_console/api/config",
        "/_console/api/token",
        "/_console/api/scenarios",
    }
)
PUBLIC_PREFIXES = ("/_console/static/",)
REALM = 'Bearer realm="nhs-fhir-facade"'
FHIR_JSON = b"application/fhir+json; charset=utf-8"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def bearer_token(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None or value[:7].lower() != "bearer ":
        return None
    return value[7:].strip() or None


def _refusal(status: int, code: str, text: str, challenge: str | None) -> Message:
    body = orjson.dumps(operation_outcome(issue(code, text)))
    headers = [
        (b"content-type", FHIR_JSON),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if challenge:
        headers.append((b"www-authenticate", challenge.encode()))
    return {
        "start": {"type": "http.response.start", "status": status, "headers": headers},
        "body": {"type": "http.response.body", "body": body},
    }


def audit_note(scope: Scope, request_id: str) -> AuditNote:
    """The request's AuditNote as the edge opens it, before any handler refines it."""
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    return AuditNote(
        request_id=request_id,
        method=scope["method"],
        target=scope["path"] + (f"?{query}" if query else ""),
        client_address=client[0] if client else None,
        interaction=interaction_of(scope["method"], scope["path"]),
    )


async def authenticate(scope: Scope, access: AccessControl, note: AuditNote) -> tuple[Principal | None, Message | None]:
    """The caller's principal, or the refusal to answer with (its reason noted for the audit)."""
    token = bearer_token(scope)
    if token is None:
        note.reason = "no bearer token"
        return None, _refusal(401, "login", "This endpoint needs 'Authorization: Bearer <access token>'", REALM)
    try:
        principal = await access.authenticate(token, _header(scope, b"x-purpose-of-use"))
    except InvalidToken as exc:
        note.reason = f"invalid token: {exc.reason}"
        return None, _refusal(401, "login", "The access token is not valid", f'{REALM}, error="invalid_token"')
    except BadPurpose as exc:
        note.reason = str(exc)
        return None, _refusal(exc.status, "value" if exc.status == 400 else "forbidden", str(exc), None)
    return principal, None


async def recorded_refusal(access: AccessControl, note: AuditNote, refusal: Message | None) -> Message:
    """The refusal of a caller who could not be authenticated, its AuditEvent recorded
    first; the 503 instead when the audit trail cannot record it (fail closed)."""
    request_trace.record("access", f"refused: {note.reason}", {"decision": "refused", "reason": note.reason})
    refusal = refusal or unavailable()
    if not await access.record(note, None, refusal["start"]["status"]):
        return unavailable()
    return refusal


async def answer_recorded(access: AccessControl, note: AuditNote, principal: Principal, status: int) -> bool:
    """Record the AuditEvent of an authenticated caller's answer (and the handlers' access
    decision on the console's trace); False when it could be stored nowhere: the answer
    must then not be sent (fail closed)."""
    if note.reason or note.withheld or status in (401, 403):
        _trace_decision(note, status)
    return await access.record(note, principal, status)


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        access: AccessControl = scope["app"].state.access
        state = scope.setdefault("state", {})
        note = audit_note(scope, state.get("request_id", "-"))
        state["audit"] = note
        state["access"] = access
        principal, refusal = await authenticate(scope, access, note)
        if refusal is not None or principal is None:
            answer = await recorded_refusal(access, note, refusal)
            await send(answer["start"])
            await send(answer["body"])
            return
        if request_trace.current() is not None:
            request_trace.record("access", "authenticated", access_detail(principal))
        state["principal"] = principal
        await self._pass_audited(scope, receive, send, access, note, principal)

    async def _pass_audited(
        self, scope: Scope, receive: Receive, send: Send, access: AccessControl, note: AuditNote, principal: Principal
    ) -> None:
        started: dict[str, Any] = {"sent": False, "dropped": False}

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started["sent"] = True
                if not await answer_recorded(access, note, principal, message["status"]):
                    started["dropped"] = True
                    failed = unavailable()
                    await send(failed["start"])
                    await send(failed["body"])
                    return
            elif started["dropped"]:
                return
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not started["sent"]:
                note.reason = "internal error"
                await access.record(note, principal, 500)
            raise


def access_detail(principal: Principal) -> dict[str, Any]:
    """What the console's trace shows of an authenticated caller: never the token."""
    return {
        "decision": "authenticated",
        "roles": sorted(principal.roles),
        "purpose": principal.purpose,
        "scopes": principal.scopes.text(),
        "patient_context": principal.patient is not None,
        "client_id": principal.client_id,
    }


def _trace_decision(note: AuditNote, status: int) -> None:
    """The handlers' access decision, as the audit note holds it, on the console's trace."""
    if note.reason or status in (401, 403):
        reason = note.reason or "the access policy (scope, role, purpose or relationship)"
        request_trace.record(
            "access", f"refused: {reason}", {"decision": "refused", "reason": reason, "status": status}
        )
    if note.withheld:
        request_trace.record(
            "access", f"withheld {note.withheld} resource(s)", {"decision": "withheld", "count": note.withheld}
        )


def unavailable() -> Message:
    """The 503 of an access the audit trail could not record (fail closed)."""
    refusal = _refusal(
        503,
        "transient",
        "The audit trail cannot record this access right now, so it is refused; try again shortly",
        None,
    )
    refusal["start"]["headers"].append((b"retry-after", b"5"))
    return refusal
