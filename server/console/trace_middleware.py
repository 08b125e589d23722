"""Record a trace of every FHIR and PAS request for the console (pure ASGI).

Installed by create_app directly inside RequestIdMiddleware (so the request id is in the
scope state) and only when the console is on (server/console/gate.py): with the console
off there is no middleware and the hooks in server.request_trace find no trace.

Traced: the FHIR base and every path under it, and /pas; not the console itself, the
health probes, /metrics or the discovery documents (they do nothing worth tracing and
would push real requests out of the ring).

Conversion warnings: the providers hand theirs to the server as OperationOutcome issues
(SearchResult.issues), and the handler puts them in the searchset Bundle as an entry with
search.mode "outcome". Rather than a hook in each provider or in the handler, the one
place every warning passes is the answer itself: a successful FHIR JSON Bundle that has
such an entry is read back here (only when tracing, only up to MAX_SCANNED_BODY bytes),
and each warning becomes a "conversion" event. An error answer's OperationOutcome gives
the final event its issue code and diagnostics.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.console.state import ConsoleState
from server.request_trace import REDACTED, Trace, tracing

UNTRACED_PREFIXES = ("/_console", "/_health", "/metrics", "/metadata", "/.well-known", "/openapi.json", "/favicon.ico")
MAX_SCANNED_BODY = 2_000_000
# Request headers never kept in a trace, in any mode: credentials.
SECRET_HEADERS = frozenset({"authorization", "cookie", "x-nhs-user-token", "proxy-authorization"})


def traced_path(path: str) -> bool:
    return not path.startswith(UNTRACED_PREFIXES)


class TraceMiddleware:
    def __init__(self, app: ASGIApp, console: ConsoleState) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not traced_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        redact = self.console.mode == "live"
        state = scope.get("state") or {}
        trace = Trace(
            request_id=str(state.get("request_id", "-")),
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            redact=redact,
        )
        trace.keep_headers(scope.get("headers", []), SECRET_HEADERS)
        answer: dict[str, Any] = {"status": None, "scan": False, "body": bytearray()}

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["scan"] = _scannable(message)
            elif message["type"] == "http.response.body" and answer["scan"]:
                body: bytearray = answer["body"]
                body += message.get("body", b"")
                if len(body) > MAX_SCANNED_BODY:
                    answer["scan"] = False
                    body.clear()
            await send(message)

        try:
            with tracing(trace):
                await self.app(scope, receive, traced_send)
        finally:
            if answer["scan"] and answer["body"]:
                _note_outcomes(trace, bytes(answer["body"]), answer["status"] or 500)
            trace.finish(answer["status"] or 500)
            self.console.keep(trace)


def _scannable(start: Message) -> bool:
    for key, value in start.get("headers", ()):
        if key.lower() == b"content-type":
            return b"json" in value
    return False


def _note_outcomes(trace: Trace, body: bytes, status: int) -> None:
    """Conversion warnings from a Bundle's outcome entry; an error's issues on the trace."""
    if status < 400 and b'"outcome"' not in body:
        return  # no outcome entry: nothing to parse (the common case)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if not isinstance(document, dict):
        return
    if document.get("resourceType") == "OperationOutcome":
        for found in _issues(document, trace.redact)[:5]:
            trace.add("response", f"{found['severity']} {found['code']}: {found['text']}", found)
        return
    for entry in document.get("entry") or ():
        if not isinstance(entry, dict) or (entry.get("search") or {}).get("mode") != "outcome":
            continue
        for found in _issues(entry.get("resource") or {}, trace.redact):
            trace.add("conversion", f"{found['severity']}: {found['text']}", found)


def _issues(outcome: Any, redact: bool) -> list[dict[str, str]]:
    """Each issue's severity, code and text; in live mode without the text, which may quote
    what the caller asked about (a name in a search, an id)."""
    found = []
    for item in outcome.get("issue") or () if isinstance(outcome, dict) else ():
        if isinstance(item, dict):
            text = item.get("diagnostics") or ((item.get("details") or {}).get("text")) or ""
            found.append(
                {
                    "severity": str(item.get("severity", "")),
                    "code": str(item.get("code", "")),
                    "text": REDACTED if redact and text else str(text),
                }
            )
    return found
