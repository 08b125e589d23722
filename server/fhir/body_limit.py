"""Size limits at the edge (pure ASGI): a body or query string over its limit is refused
before any handler reads it.

- `Content-Length` over `max_body_bytes`: 413 at once, not a byte of the body read;
- a chunked body (no length declared) is counted as it streams: the read that crosses the
  limit raises PayloadTooLarge, which the app's own handlers render (an OperationOutcome,
  or the PAS error shape under /pas/v1), so nothing beyond limit + one chunk is buffered;
- a query string over `max_query_chars`: 414 URI Too Long (RFC 9110 15.5.15), the
  status defined for it. Hypercorn's own request-line limit (16 KiB) still applies above.

Refusals written here are OperationOutcomes (code `too-costly`) on every path, /pas/v1
included: they are answered before routing knows which API was meant. The middleware
also makes the limits current for the request (server.fhir.request_limits), for the
list limits the search parser checks.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.fhir.errors import FHIRError
from server.fhir.request_limits import (
    PayloadTooLarge,
    RequestLimits,
    body_too_large,
    limits_in_force,
    query_too_long,
)

_MAX_DIGITS = 19  # int() of a longer run of digits is work the answer (413) does not need


def declared_length(scope: Scope) -> int | None:
    """The body size the client declared, or None (absent, chunked, or malformed: the
    HTTP server itself refuses a malformed Content-Length)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit():  # bytes.isdigit: ASCII digits only
                return None
            return int(value) if len(value) <= _MAX_DIGITS else 10**_MAX_DIGITS
    return None


def refusal(scope: Scope, limits: RequestLimits) -> FHIRError | None:
    """The error a request must get before it reaches the app, if any."""
    query = scope.get("query_string", b"")
    if len(query) > limits.max_query_chars:
        return query_too_long(len(query), limits.max_query_chars)
    length = declared_length(scope)
    if length is not None and length > limits.max_body_bytes:
        return body_too_large(limits.max_body_bytes)
    return None


async def send_outcome(send: Send, error: FHIRError) -> None:
    """Answer with the error's OperationOutcome (the request id middleware adds X-Request-ID)."""
    body = orjson.dumps(error.outcome())
    headers = [
        (b"content-type", b"application/fhir+json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]  # the unread body must not be taken for the next request
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse oversized bodies and query strings; count streamed bodies as they arrive."""

    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with limits_in_force(self.limits):
            early = refusal(scope, self.limits)
            if early is not None:
                await send_outcome(send, early)
                return
            await self._serve_counted(scope, receive, send)

    async def _serve_counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.max_body_bytes
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise body_too_large(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except PayloadTooLarge as exc:  # raised where no exception handler renders it
            if started:
                raise
            await send_outcome(send, exc)
