"""Request-id middleware (pure ASGI): echo or mint X-Request-ID, take the caller's W3C
traceparent, count and log each request without PHI, and turn any unexpected exception
into a 500 OperationOutcome instead of a traceback.

The access log line names the request id, trace id, method, resource type, interaction,
status, duration, cache result (X-Cache) and NHS calls sent only: paths carry NHS numbers
and queries carry names and birth dates, so neither is logged (with FACADE_LOG_FORMAT=json
the same fields are the JSON object's, see server/log_setup.py). For the same reason a
client's X-Request-ID is kept only when it is a UUID: any other text (a client may well
put an NHS number or a name in it) would be logged, and sent to NHS as X-Correlation-ID,
as it came; it is replaced by a fresh uuid4. A traceparent is kept only when well formed
(server/trace_context.py): its ids are hex, so they carry nothing else.

The request metrics (server/metrics.py) are labelled by resource type (one the registry
serves, else "other"; "system" for the base and operational paths) and interaction, so
no id reaches a label either.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import metrics
from server.access.audit_event import interaction_of
from server.fhir.outcome import issue, operation_outcome
from server.random_ids import random_uuid
from server.trace_context import inbound_trace

log = logging.getLogger("facade.access")
# The canonical 8-4-4-4-12 hex form, any case; no braces, urn:uuid: prefix or bare 32 hex.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE)


def chosen_request_id(inbound: str | None) -> str:
    """The id of this request: the client's X-Request-ID when it is a UUID, else a new one."""
    return inbound if inbound is not None and _UUID.fullmatch(inbound) else random_uuid()


# First path segments that are the façade's own, not a resource type: label "system".
_SYSTEM_SEGMENTS = {
    "": "system",
    "metadata": "capabilities",
    "_health": "health",
    "metrics": "metrics",
    ".well-known": "discovery",
    "openapi.json": "discovery",
}


def request_labels(method: str, path: str, served: frozenset[str]) -> tuple[str, str]:
    """(type, interaction) for the metrics and the log: bounded sets whatever the path.
    `served`: the resource types the registry serves; any other type is "other"."""
    parts = [p for p in path.split("/") if p]
    first = parts[0] if parts else ""
    if first == "pas":
        return "pas", interaction_of(method, path)
    if first in _SYSTEM_SEGMENTS:
        return "system", "batch" if (method == "POST" and not parts) else _SYSTEM_SEGMENTS[first]
    if first.startswith("$") or first == "_history":
        return "system", "operation" if first.startswith("$") else "history"
    # A compartment search (/Patient/{id}/Observation) is a search of its last type.
    rtype = parts[2] if len(parts) >= 3 and parts[2] in served else first
    return (rtype if rtype in served else "other"), interaction_of(method, path)


ACCESS_LINE = "request_id=%s trace_id=%s method=%s type=%s interaction=%s status=%s ms=%.1f cache=%s nhs_calls=%d"


def _served_types(scope: Scope) -> frozenset[str]:
    runtime = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
    return frozenset(p.resource_type for p in runtime.registry) if runtime is not None else frozenset()


def inbound_ids(scope: Scope) -> tuple[str | None, str | None]:
    """The client's X-Request-ID and traceparent headers, as sent (None when absent)."""
    inbound = traceparent = None
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            inbound = value.decode("latin-1")
        elif key == b"traceparent":
            traceparent = value.decode("latin-1")
    return inbound, traceparent


def internal_error(request_id: str) -> tuple[Message, Message]:
    """The 500 OperationOutcome of a request that failed unexpectedly (start, body)."""
    body = orjson.dumps(
        operation_outcome(issue("exception", f"Internal error; quote request id {request_id} when reporting it"))
    )
    start = {
        "type": "http.response.start",
        "status": 500,
        "headers": [
            (b"content-type", b"application/fhir+json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),  # outside server.fhir.no_store, so set here
            (b"vary", b"Authorization"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def log_unhandled(exc: Exception, request_id: str) -> None:
    """One line for an unexpected exception: its type and where, never its message."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f"{frame.filename}:{frame.lineno}" if frame else "?"
    # Only the type and location: exception messages may quote patient data.
    log.error("unhandled %s at %s request_id=%s", type(exc).__name__, where, request_id)


class RequestRecorder:
    """Each request's metrics and its one access-log line: labels and counts, nothing from
    the path. Shared by RequestIdMiddleware and the read shortcut (server/fhir/read_shortcut.py)."""

    def __init__(self) -> None:
        self._served: frozenset[str] | None = None  # the registry's types, read at the first request

    def record(
        self,
        scope: Scope,
        request_id: str,
        trace_id: str,
        status: int | None,
        cache: str | None,
        nhs_calls: int,
        started: float,
    ) -> None:
        seconds = time.perf_counter() - started
        if self._served is None:
            self._served = _served_types(scope) or None  # not cached before the lifespan filled the registry
        method = scope.get("method", "-")
        rtype, interaction = request_labels(method, scope.get("path", ""), self._served or frozenset())
        metrics.observe_request(rtype, interaction, status if status is not None else 500, seconds)
        if not log.isEnabledFor(logging.INFO):
            return  # FACADE_LOG_LEVEL=WARNING: not even the fields are built
        fields = {
            "request_id": request_id,
            "trace_id": trace_id,
            "method": method,
            "type": rtype,
            "interaction": interaction,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "cache": cache,
            "nhs_calls": nhs_calls,
        }
        # makeRecord and handle, as Logger.info would, without its walk up the stack for
        # the caller's file and line: no format here prints them, and a line per request
        # paid for it (the JSON line's fields go in `extra`, server/log_setup.py).
        log.handle(
            log.makeRecord(
                log.name,
                logging.INFO,
                __file__,
                0,
                ACCESS_LINE,
                (request_id, trace_id, method, rtype, interaction, status, seconds * 1000, cache or "-", nhs_calls),
                None,
                extra={"fields": fields},
            )
        )


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.recorder = RequestRecorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound, traceparent = inbound_ids(scope)
        request_id = chosen_request_id(inbound)
        trace = inbound_trace(traceparent)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["trace"] = trace  # NHS calls are its children (server.nhs.client)
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": None, "cache": None}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = []
                for k, v in message.get("headers", []):
                    name = k.lower()
                    if name == b"x-cache":
                        status_holder["cache"] = v.decode("latin-1")
                    if name != b"x-request-id":
                        headers.append((k, v))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        with metrics.tallying() as tally:  # NHS calls this request sends, for its log line
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:  # last line of defence: never a traceback to the client
                log_unhandled(exc, request_id)
                if status_holder["status"] is None:
                    start, body = internal_error(request_id)
                    await send_with_id(start)
                    await send_with_id(body)
            finally:
                self.recorder.record(
                    scope,
                    request_id,
                    trace.trace_id,
                    status_holder["status"],
                    status_holder["cache"],
                    tally.nhs_calls,
                    started,
                )
