"""The console's routes, mounted at /_console when the console is on (server/console/gate.py).

Public (they hold no data; server.access.middleware lets them through without a token):
- GET /_console, /_console/, /_console/static/{name}: the page (server/console/static/),
  with a strict Content-Security-Policy (no inline script, no framing);
- GET /_console/api/config: mode and what the page may offer;
- POST /_console/api/token (sandbox only): a development-issuer token, as the CLI's
  `nhs-fhir-facade token` mints one on the same machine;
- GET /_console/api/scenarios (sandbox only; live: an empty list): the emulator data's scenarios.

Behind the access edge (a verified token, one AuditEvent per request) and a console role
(roles.yaml `console_roles`), in both modes: 401 without a token, 403 without the role.
- GET /_console/api/traces, GET /_console/api/traces/{request_id}: recorded traces;
- GET, POST /_console/api/faults and POST /_console/api/faults/clear (every API's, or
  `{"api": key}`'s only; sandbox with the project's emulator only): emulator fault
  injection, forwarded to its /_control API.
Errors are OperationOutcomes, like every other answer of the façade.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from typing import Any

import aiohttp
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from server.access.claims import NHS_NUMBER, PURPOSE
from server.access.control import AccessControl
from server.access.dev_issuer import DEFAULT_LIFETIME, issue_token
from server.console.faults import KINDS, FaultSpecError, emulator_fault, fault_view
from server.console.state import ConsoleState, scenario_sources
from server.fhir.outcome import issue, operation_outcome
from server.fhir.responses import FHIRResponse

STATIC_DIR = Path(__file__).with_name("static")
_STATIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# Purposes of use the token form offers beyond the role table's clinical ones.
OTHER_PURPOSES = ("HOPERAT",)
TOKEN_FIELDS = frozenset({"scope", "role", "patient", "purpose", "subject"})
MAX_SCOPE_CHARS = 500


def _problem(status: int, code: str, text: str) -> Response:
    return FHIRResponse(operation_outcome(issue(code, text)), status_code=status)


def _not_found(text: str = "Not available in this console mode") -> Response:
    return _problem(404, "not-found", text)


def console_routes(console: ConsoleState) -> list[BaseRoute]:
    """The routes under /_console, closing over the console's state."""

    async def page(request: Request) -> Response:
        index = STATIC_DIR / "index.html"
        if not index.is_file():
            return _not_found("The console page is not installed")
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        path = static_file(name)
        if path is None:
            return _not_found("No such console file")
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if media_type.startswith("text/") or media_type in ("application/javascript", "image/svg+xml"):
            media_type += "; charset=utf-8"
        return FileResponse(path, media_type=media_type, headers=PAGE_HEADERS)

    async def config(request: Request) -> Response:
        access: AccessControl = request.app.state.access
        table = access.table
        return JSONResponse(
            {
                "mode": console.mode,
                "dev_tokens": console.mode == "sandbox" and console.dev_tokens,
                "fault_control": console.fault_control(),
                "apis": console.api_keys(),
                "fault_kinds": sorted(KINDS),
                "roles": sorted(table.roles),
                "console_roles": sorted(table.console_roles),
                "purposes": sorted(table.clinical_purposes)
                + [p for p in OTHER_PURPOSES if p not in table.clinical_purposes],
                "trace_capacity": console.traces.capacity,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def token(request: Request) -> Response:
        if console.mode != "sandbox" or not console.dev_tokens:
            return _not_found("Development tokens are minted in sandbox mode only")
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        access: AccessControl = request.app.state.access
        problem = _token_problem(body, set(access.table.roles))
        if problem:
            return _problem(400, "value", problem)
        minted = issue_token(
            console.dev_key(),
            audience=console.audience(),
            scope=body["scope"].strip(),
            subject=body.get("subject") or "console-user",
            roles=[body["role"]],
            patient=body.get("patient") or None,
            purpose=(body.get("purpose") or "TREAT").upper(),
            lifetime=DEFAULT_LIFETIME,
        )
        return JSONResponse(
            {"access_token": minted, "token_type": "Bearer", "expires_in": DEFAULT_LIFETIME},
            headers={"Cache-Control": "no-store"},
        )

    async def scenarios(request: Request) -> Response:
        found: list[dict[str, Any]] = []
        if console.mode == "sandbox":
            for source, key in scenario_sources(console.sources):
                for s in source.scenarios():
                    found.append(
                        {
                            "id": s.id,
                            "title": s.title,
                            "description": s.description,
                            "source": key,
                            "source_name": source.name,
                            "resource_type": s.resource_type,
                            "request": {
                                "method": s.method,
                                "path": "/" + s.path.lstrip("/"),
                                "query": dict(s.query),
                                "headers": dict(s.headers),
                            },
                            "token": {"scope": s.scope, "role": s.role, "patient": s.patient, "purpose": s.purpose},
                        }
                    )
        return JSONResponse({"scenarios": found})

    async def traces(request: Request) -> Response:
        refused = _console_role_refusal(request)
        if refused:
            return refused
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            return _problem(400, "value", "limit must be a whole number")
        if limit < 1:
            return _problem(400, "value", "limit must be at least 1")
        shared = await console.shared.recent(limit) if console.shared is not None else None
        return JSONResponse(
            {
                "mode": console.mode,
                "capacity": console.traces.capacity,
                "shared": shared is not None,  # every worker's traces (MongoDB), else this worker's
                "traces": shared if shared is not None else [t.summary() for t in console.traces.recent(limit)],
            }
        )

    async def trace(request: Request) -> Response:
        refused = _console_role_refusal(request)
        if refused:
            return refused
        _audit(request, interaction="read")
        request_id = request.path_params["request_id"]
        found = console.traces.get(request_id)
        if found is not None:
            return JSONResponse(found.as_json())
        shared = await console.shared.get(request_id) if console.shared is not None else None
        if shared is not None:
            return JSONResponse(shared)
        where = "the façade's" if console.shared is not None else "this worker's (without MongoDB each keeps its own)"
        return _problem(404, "not-found", f"No trace of that request id among {where} recent traces")

    async def faults(request: Request) -> Response:
        refused = _console_role_refusal(request) or _fault_control_refusal(console)
        if refused:
            return refused
        listed: list[dict[str, Any]] = []
        for base in _emulator_bases(console):
            answer = await _control(console, "GET", f"{base}/_control/faults")
            if isinstance(answer, Response):
                return answer
            for raw in answer.get("faults", []):
                listed += fault_view(console, base, raw)
        return JSONResponse({"faults": listed})

    async def add_fault(request: Request) -> Response:
        refused = _console_role_refusal(request) or _fault_control_refusal(console)
        if refused:
            return refused
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        try:
            base, fault = emulator_fault(console, body)
        except FaultSpecError as exc:
            return _problem(400, "value", str(exc))
        answer = await _control(console, "POST", f"{base}/_control/faults", fault)
        if isinstance(answer, Response):
            return answer
        return JSONResponse({"added": {"api": body["api"], **fault}}, status_code=201)

    async def clear_faults(request: Request) -> Response:
        refused = _console_role_refusal(request) or _fault_control_refusal(console)
        if refused:
            return refused
        # An empty body (or none) clears every API's faults; {"api": key} that API's only.
        body = await _json_object(request) if await request.body() else {}
        if isinstance(body, Response):
            return body
        api = body.get("api")
        targets: list[tuple[str, dict[str, str]]]
        if api is None:
            targets = [(base, {}) for base in _emulator_bases(console)]
        elif isinstance(api, str) and (control := console.emulator_control(api)) is not None:
            targets = [(control.base_url, {"path_prefix": control.path_prefix})]
        else:
            return _problem(400, "value", f"api must be one of the emulated NHS APIs {console.api_keys()}")
        for base, spec in targets:
            answer = await _control(console, "POST", f"{base}/_control/faults/clear", spec)
            if isinstance(answer, Response):
                return answer
        return JSONResponse({"cleared": api or "all"})

    # The route table, in one screen. The bare /_console is a route of its own: a Mount
    # matches only below its prefix.
    return [
        Route("/_console", page, methods=["GET"]),
        Mount(
            "/_console",
            routes=[
                Route("/", page, methods=["GET"]),
                Route("/static/{name:path}", static, methods=["GET"]),
                Route("/api/config", config, methods=["GET"]),
                Route("/api/token", token, methods=["POST"]),
                Route("/api/scenarios", scenarios, methods=["GET"]),
                Route("/api/traces", traces, methods=["GET"]),
                Route("/api/traces/{request_id}", trace, methods=["GET"]),
                Route("/api/faults", faults, methods=["GET"]),
                Route("/api/faults", add_fault, methods=["POST"]),
                Route("/api/faults/clear", clear_faults, methods=["POST"]),
            ],
        ),
    ]


def static_file(name: str, directory: Path = STATIC_DIR) -> Path | None:
    """The file `name` of the one flat static directory, or None: a name with a separator,
    "..", a leading dot or any character outside [A-Za-z0-9_.-] never matches."""
    if not _STATIC_NAME.fullmatch(name) or ".." in name:
        return None
    path = directory / name
    return path if path.is_file() and path.parent == directory else None


def _audit(request: Request, *, interaction: str) -> None:
    note = request.scope.get("state", {}).get("audit")
    if note is not None:
        note.interaction = interaction


def _console_role_refusal(request: Request) -> Response | None:
    """401 without an authenticated caller, 403 unless one of its roles is a console role.
    The access edge has already authenticated (and will audit) the request; a refusal here
    is noted on the audit record."""
    state = request.scope.get("state", {})
    principal = state.get("principal")
    if principal is None:
        return _problem(401, "login", "The console's API needs 'Authorization: Bearer <access token>'")
    access: AccessControl = request.app.state.access
    if principal.roles & access.table.console_roles:
        return None
    note = state.get("audit")
    if note is not None:
        note.reason = "no console role"
    allowed = ", ".join(sorted(access.table.console_roles)) or "none configured"
    response = _problem(403, "forbidden", f"The console's traces and fault controls need a console role ({allowed})")
    response.headers["WWW-Authenticate"] = 'Bearer realm="nhs-fhir-facade", error="insufficient_scope"'
    return response


def _fault_control_refusal(console: ConsoleState) -> Response | None:
    if not console.fault_control():
        return _not_found("Fault controls need sandbox mode with the project's NHS emulator")
    return None


def _emulator_bases(console: ConsoleState) -> list[str]:
    return list(dict.fromkeys(c.base_url for k in console.api_keys() if (c := console.emulator_control(k))))


async def _json_object(request: Request) -> dict[str, Any] | Response:
    try:
        body = await request.json()
    except ValueError:
        return _problem(400, "structure", "The body must be a JSON object")
    if not isinstance(body, dict):
        return _problem(400, "structure", "The body must be a JSON object")
    return body


def _token_problem(body: dict[str, Any], roles: set[str]) -> str | None:
    """Why a token request is refused, or None."""
    unknown = sorted(set(body) - TOKEN_FIELDS)
    if unknown:
        return f"Unknown field(s) {unknown}; expected {sorted(TOKEN_FIELDS)}"
    scope = body.get("scope")
    if not isinstance(scope, str) or not scope.strip() or len(scope) > MAX_SCOPE_CHARS:
        return f"scope must be SMART scopes (e.g. 'user/*.rs'), 1 to {MAX_SCOPE_CHARS} characters"
    role = body.get("role")
    if not isinstance(role, str) or role not in roles:
        return f"role must be one of {sorted(roles)}"
    patient = body.get("patient")
    if patient is not None and (not isinstance(patient, str) or (patient and not NHS_NUMBER.fullmatch(patient))):
        return "patient must be a 10-digit NHS number or null"
    purpose = body.get("purpose")
    if purpose is not None and (not isinstance(purpose, str) or not PURPOSE.fullmatch(purpose.upper())):
        return "purpose must be a v3 PurposeOfUse code such as TREAT or ETREAT, or null"
    subject = body.get("subject")
    if subject is not None and (not isinstance(subject, str) or not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", subject)):
        return "subject must be 1 to 64 letters, digits or ._@-"
    return None


async def _control(console: ConsoleState, method: str, url: str, body: Any = None) -> dict[str, Any] | Response:
    """One call to the emulator's /_control API; a failure is a 502 OperationOutcome."""
    if console.session is None:
        return _not_found("Fault controls are not connected yet")
    try:
        async with console.session.request(method, url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            answer = await resp.json(content_type=None)
            if resp.status >= 400:
                return _problem(502, "exception", f"The emulator refused the fault: {answer}")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return _problem(502, "transient", f"The emulator's control API did not answer ({type(exc).__name__})")
    return answer if isinstance(answer, dict) else {}
