"""Request-id middleware (pure ASGI): echo or mint X-Request-ID, log without PHI, and
turn any unexpected exception into a 500 OperationOutcome instead of a traceback.

The access log line names the request id, method, resource type and status only: paths
carry NHS numbers and queries carry names and birth dates, so neither is logged. For the
same reason a client's X-Request-ID is kept only when it is a UUID: any other text (a
client may well put an NHS number or a name in it) would be logged, and sent to NHS as
X-Correlation-ID, as it came; it is replaced by a fresh uuid4.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.fhir.outcome import issue, operation_outcome

log = logging.getLogger("facade.access")
# The canonical 8-4-4-4-12 hex form, any case; no braces, urn:uuid: prefix or bare 32 hex.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE)


def chosen_request_id(inbound: str | None) -> str:
    """The id of this request: the client's X-Request-ID when it is a UUID, else a new one."""
    return inbound if inbound is not None and _UUID.fullmatch(inbound) else str(uuid.uuid4())


def _resource_type(path: str) -> str:
    first = path.strip("/").split("/", 1)[0]
    return first if re.match(r"^[A-Za-z_$][A-Za-z]{0,63}$", first) else "-"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = chosen_request_id(inbound)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": None}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # last line of defence: never a traceback to the client
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f"{frame.filename}:{frame.lineno}" if frame else "?"
            # Only the type and location: exception messages may quote patient data.
            log.error("unhandled %s at %s request_id=%s", type(exc).__name__, where, request_id)
            if status_holder["status"] is None:
                body = orjson.dumps(
                    operation_outcome(
                        issue("exception", f"Internal error; quote request id {request_id} when reporting it")
                    )
                )
                status_holder["status"] = 500
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/fhir+json; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"),  # outside server.fhir.no_store, so set here
                            (b"vary", b"Authorization"),
                        ],
                    }
                )
                await send_with_id({"type": "http.response.body", "body": body})
        finally:
            log.info(
                "request_id=%s method=%s type=%s status=%s ms=%.1f",
                request_id,
                scope.get("method"),
                _resource_type(scope.get("path", "")),
                status_holder["status"],
                (time.perf_counter() - started) * 1000,
            )
