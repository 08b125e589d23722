"""The read shortcut: a plain `GET /{type}/{id}` through one edge instead of nine layers.

Why: a read is the façade's hottest request, and a cached one spent most of its CPU
passing through the middleware stack (gzip, XML, request id, no-store, access, size
limits, Starlette's exception middleware and router): each layer a call, a closure
around `send` and a copy of the response headers. A plain read needs none of their
branching: it has no body and no query string, asks for JSON, and is not a browser's
cross-origin request. For exactly those requests this edge does what the stack does, in
the stack's order and with the stack's own functions:

    request id and traceparent       server.fhir.middleware (chosen_request_id, inbound_trace)
    authenticate, AuditNote          server.access.middleware (audit_note, authenticate)
    size limits in force             server.fhir.request_limits
    the read itself                  server.fhir.handlers.read, with the app's exception
                                     handlers for its errors (the same OperationOutcomes)
    one AuditEvent before the answer AccessControl.record; fail closed with the same 503
    no-store, Vary, X-Request-ID     server.fhir.no_store, server.fhir.xml_format
    gzip of a large body             Starlette's GZipMiddleware, as the stack has it
    metrics and the access-log line  server.fhir.middleware.RequestRecorder

Everything else goes through the full stack untouched: any other method or path (the
router's own choice decides: only a request it sends to `handlers.read` is taken), a
query string, a body, a request for XML or a format the negotiation refuses. The edge is
installed only when the stack has nothing more for a read: with the console off (its
trace middleware) and CORS off (which adds `Vary: Origin` to every answer).
tests/integration/test_read_shortcut.py sends the same requests both ways and compares
status, headers, body and AuditEvent.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import metrics, request_trace
from server.access.control import AccessControl
from server.access.middleware import (
    access_detail,
    answer_recorded,
    audit_note,
    authenticate,
    recorded_refusal,
    unavailable,
)
from server.access.principal import Principal
from server.fhir import handlers
from server.fhir.errors import FHIRError
from server.fhir.formats import JSON, check_format
from server.fhir.indexed_headers import IndexedHeaders
from server.fhir.middleware import (
    RequestRecorder,
    chosen_request_id,
    internal_error,
    log_unhandled,
)
from server.fhir.no_store import merged_vary
from server.fhir.request_limits import RequestLimits, limits_in_force
from server.fhir.responses import FHIR_JSON
from server.fhir.route_shapes import ShapeCachedRouter
from server.trace_context import inbound_trace

Handler = Any  # an exception handler: async (Request, Exception) -> Response
NO_QUERY = QueryParams("")  # immutable: one for every plain read


class PlainRead:
    """What a plain read's headers say; None from `plain_read` for any other request."""

    __slots__ = ("request_id", "traceparent")

    def __init__(self, request_id: str | None, traceparent: str | None) -> None:
        self.request_id = request_id
        self.traceparent = traceparent


def plain_read(scope: Scope) -> PlainRead | None:
    """The request's ids when it is a plain read (GET, no query string, no body, JSON
    wanted, no Origin), else None. One pass over the headers; the last X-Request-ID and
    traceparent win, as in RequestIdMiddleware."""
    if scope["method"] != "GET" or scope.get("query_string"):
        return None
    request_id = traceparent = None
    accept: list[str] = []
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            request_id = value.decode("latin-1")
        elif key == b"traceparent":
            traceparent = value.decode("latin-1")
        elif key == b"accept":
            accept.append(value.decode("latin-1"))
        elif key == b"transfer-encoding" or key == b"origin" or (key == b"content-length" and value.strip() != b"0"):
            return None
    if accept:
        try:
            if check_format(None, ", ".join(accept)) != JSON:
                return None
        except FHIRError:  # 406: the full stack answers it
            return None
    return PlainRead(request_id, traceparent)


class PlainReadRequest(Request):
    """The Request the read handler gets here: headers indexed (server/fhir/indexed_headers.py)
    and the query string, empty by the shortcut's rule, not parsed."""

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = IndexedHeaders(scope=self.scope)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        return NO_QUERY


def _handler_for(handlers_by_type: dict[Any, Handler], exc: Exception) -> Handler | None:
    """The app's handler for this exception, by its class's MRO (as Starlette looks it up)."""
    for cls in type(exc).__mro__:
        if cls in handlers_by_type:
            return handlers_by_type[cls]
    return None


def _messages(response: Response) -> tuple[Message, Message]:
    start = {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    return start, {"type": "http.response.body", "body": response.body}


class ReadShortcut:
    """Plain reads answered in one edge (see the module docstring); the rest to `app`."""

    def __init__(self, app: ASGIApp, *, limits: RequestLimits, gzip_minimum_size: int, gzip_level: int) -> None:
        self.app = app
        self.limits = limits
        self.gzip_minimum_size = gzip_minimum_size
        self.gzip_level = gzip_level
        self.recorder = RequestRecorder()
        self.answered = 0  # plain reads answered here (a count for the tests and for scale)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = plain_read(scope) if scope["type"] == "http" else None
        if plain is None or not self._routed_to_read(scope):
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, send, plain)

    @staticmethod
    def _routed_to_read(scope: Scope) -> bool:
        """Whether the app's router hands this request to the read handler; the route's
        path parameters are then set as the router would set them."""
        router = scope["app"].router
        route = router.route_for(scope) if isinstance(router, ShapeCachedRouter) else None
        if route is None or getattr(route, "endpoint", None) is not handlers.read:
            return False
        _, child_scope = route.matches(scope)
        scope.setdefault("router", router)
        scope["route"] = route
        scope.update(child_scope)
        return True

    async def _serve(self, scope: Scope, receive: Receive, send: Send, plain: PlainRead) -> None:
        self.answered += 1
        request_id = chosen_request_id(plain.request_id)
        trace = inbound_trace(plain.traceparent)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["trace"] = trace  # NHS calls are its children (server.nhs.client)
        started = time.perf_counter()
        status: int | None = None
        cache: str | None = None
        with metrics.tallying() as tally, limits_in_force(self.limits):
            try:
                start, body = await self._audited_answer(scope, receive, state, request_id)
                start = self._finished(start, request_id, private=True)
            except Exception as exc:  # last line of defence: never a traceback to the client
                log_unhandled(exc, request_id)
                start, body = internal_error(request_id)
                start = self._finished(start, request_id, private=False)
            try:
                status = start["status"]
                cache = _header(start["headers"], b"x-cache")
                await self._send(scope, receive, send, start, body)
            finally:
                self.recorder.record(scope, request_id, trace.trace_id, status, cache, tally.nhs_calls, started)

    async def _audited_answer(
        self, scope: Scope, receive: Receive, state: dict[str, Any], request_id: str
    ) -> tuple[Message, Message]:
        """The answer as the access edge passes it out: authenticated, read, audited."""
        access: AccessControl = scope["app"].state.access
        note = audit_note(scope, request_id)
        state["audit"] = note
        state["access"] = access
        principal: Principal | None
        principal, refusal = await authenticate(scope, access, note)
        if refusal is not None or principal is None:
            answer = await recorded_refusal(access, note, refusal)
            return answer["start"], answer["body"]
        if request_trace.current() is not None:
            request_trace.record("access", "authenticated", access_detail(principal))
        state["principal"] = principal
        try:
            start, body = _messages(await self._read(scope, receive))
        except Exception:
            note.reason = "internal error"
            await access.record(note, principal, 500)
            raise
        if not await answer_recorded(access, note, principal, start["status"]):
            failed = unavailable()
            return failed["start"], failed["body"]
        return start, body

    @staticmethod
    async def _read(scope: Scope, receive: Receive) -> Response:
        """handlers.read, its errors rendered by the app's exception handlers."""
        request = PlainReadRequest(scope, receive)
        try:
            return await handlers.read(request)
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            response: Response = await handler(request, exc)
            return response

    @staticmethod
    def _finished(start: Message, request_id: str, *, private: bool) -> Message:
        """The response start as the layers above the access edge leave it: private
        (server.fhir.no_store: Cache-Control no-store, Authorization in Vary), X-Request-ID
        set (server.fhir.middleware), Accept in Vary on FHIR JSON (server.fhir.xml_format).
        One pass over the headers for what those layers do in three."""
        kept: list[tuple[bytes, bytes]] = []
        vary: list[str] = []
        media = b""
        encoded = False
        for key, value in start["headers"]:
            lowered = key.lower()
            if lowered == b"vary":
                vary.append(value.decode("latin-1"))
                continue
            if lowered == b"x-request-id" or (private and lowered == b"cache-control"):
                continue
            if lowered == b"content-type" and not media:
                media = value
            elif lowered == b"content-encoding":
                encoded = True
            kept.append((key, value))
        if private:
            vary = [merged_vary(vary, "Authorization")]
            kept.append((b"cache-control", b"no-store"))
        kept.append((b"x-request-id", request_id.encode("latin-1")))
        if not encoded and media.split(b";")[0].strip().lower() == FHIR_JSON.encode():
            vary = [merged_vary(vary, "Accept")]
        if vary:
            kept.append((b"vary", ", ".join(vary).encode("latin-1")))
        return {**start, "headers": kept}

    async def _send(self, scope: Scope, receive: Receive, send: Send, start: Message, body: Message) -> None:
        """Send the answer; a body the stack's gzip would touch goes through it."""
        if len(body.get("body", b"")) < self.gzip_minimum_size:
            await send(start)
            await send(body)
            return

        async def replay(scope: Scope, receive: Receive, send: Send) -> None:
            await send(start)
            await send(body)

        await GZipMiddleware(replay, minimum_size=self.gzip_minimum_size, compresslevel=self.gzip_level)(
            scope, receive, send
        )


def _header(raw: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in raw:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
