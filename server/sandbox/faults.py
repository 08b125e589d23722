"""Fault injection and request counting for the emulator, driven over /_control.

Tests (and the console, server/console/faults.py) tell the emulator, over HTTP, to answer
the next N matching requests with a status, a delay, a dropped connection or a malformed
body, list the faults still pending and clear them, and read back how many
requests each API received (single-flight and no-avoidable-load tests count these)
and the GP Connect consumer JWT claims it was sent (whose identity GP Connect audits).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CONTEXT_HEADERS = ("x-request-id", "x-correlation-id", "nhsd-end-user-organisation-ods", "traceparent")
# What the emulator remembers of the requests it was sent: the newest this many, and counts
# for this many distinct paths (any further path counts under OTHER_PATHS). `make run`
# serves for hours, and three list entries per NHS request (one a dict) grew its heap
# without end.
REMEMBERED = 10_000
OTHER_PATHS = "(other paths)"


@dataclass
class Fault:
    path_prefix: str = "/"
    status: int | None = None
    delay: float = 0.0
    reset: bool = False
    malformed: bool = False
    retry_after: str | None = None
    times: int = 1  # how many matching requests get this fault; -1 = every one
    body: Any = None
    # Only requests with this X-Correlation-ID (the façade sends its inbound request id
    # there: server/nhs/client.py), so a fault meets the one request it was queued for
    # even while others to the same API are in flight; None = any request.
    correlation_id: str | None = None


@dataclass
class EmulatorState:
    faults: list[Fault] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    remembered: int = REMEMBERED
    request_ids: deque[str] = field(default_factory=deque)
    arrivals: deque[float] = field(default_factory=deque)  # time.monotonic() per request, in order
    # The NHS context headers of each request, in order (tests check correlation and ODS).
    context_headers: deque[dict[str, str]] = field(default_factory=deque)
    # The decoded GP Connect consumer JWT claims, in order, the last 50 (who GP Connect audits).
    gpconnect_jwt_claims: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.request_ids = deque(self.request_ids, maxlen=self.remembered)
        self.arrivals = deque(self.arrivals, maxlen=self.remembered)
        self.context_headers = deque(self.context_headers, maxlen=self.remembered)

    def count(self, key: str) -> None:
        """One more request for `key` (method, path and query); OTHER_PATHS once `remembered`
        distinct keys are counted, so the total stays right."""
        if key not in self.counts and len(self.counts) >= self.remembered:
            key = OTHER_PATHS
        self.counts[key] += 1

    def take_fault(self, path: str, correlation_id: str | None = None) -> Fault | None:
        for fault in self.faults:
            if (
                path.startswith(fault.path_prefix)
                and fault.times != 0
                and fault.correlation_id in (None, correlation_id)
            ):
                fault.times -= 1
                return fault
        return None


class FaultMiddleware:
    """Counts every API request and applies the first matching injected fault."""

    def __init__(self, app: Any, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/_control"):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        self.state.count(f"{scope['method']} {path}" + (f"?{query}" if query else ""))
        headers = dict((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])
        self.state.request_ids.append(headers.get("x-request-id", ""))
        self.state.arrivals.append(time.monotonic())
        self.state.context_headers.append({k: v for k, v in headers.items() if k in CONTEXT_HEADERS})
        fault = self.state.take_fault(path, headers.get("x-correlation-id"))
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.reset:
            await _drop_connection(send)
            return
        if fault.malformed:
            await Response(b'{"resourceType": "Bund', media_type="application/fhir+json")(scope, receive, send)
            return
        if fault.status is None:
            await self.app(scope, receive, send)
            return
        body = fault.body or {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "transient", "diagnostics": f"injected {fault.status}"}],
        }
        extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        await JSONResponse(body, status_code=fault.status, headers=extra, media_type="application/fhir+json")(
            scope, receive, send
        )


async def _drop_connection(send: Any) -> None:
    """Promise a body, send part of it, then stop: the server closes the connection.

    ASGI gives an app no way to reset a socket before answering (raising makes Starlette
    and Hypercorn answer 500 instead), so the fault is a connection dropped mid-answer,
    which clients see as a broken connection, never as an HTTP status.
    """
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/fhir+json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"resourceType": "Pat', "more_body": True})


def control_routes(state: EmulatorState) -> list[Route]:
    async def add_fault(request: Request) -> Response:
        try:
            spec = await request.json()
        except ValueError:
            return JSONResponse({"error": "the fault must be a JSON object"}, status_code=400)
        if not isinstance(spec, dict):
            return JSONResponse({"error": "the fault must be a JSON object"}, status_code=400)
        unknown = sorted(set(spec) - set(Fault.__dataclass_fields__))
        if unknown:
            return JSONResponse(
                {"error": f"unknown fault keys: {', '.join(unknown)}", "known": sorted(Fault.__dataclass_fields__)},
                status_code=400,
            )
        state.faults.append(Fault(**spec))
        return JSONResponse({"faults": len(state.faults)})

    async def list_faults(request: Request) -> Response:
        """The faults still pending (the console shows them)."""
        return JSONResponse({"faults": [asdict(f) for f in state.faults if f.times != 0]})

    async def clear_faults(request: Request) -> Response:
        """Drop pending faults (all, or those under `path_prefix`), keeping the request counts."""
        try:
            spec = await request.json()
        except ValueError:
            spec = {}
        prefix = spec.get("path_prefix") if isinstance(spec, dict) else None
        state.faults[:] = [f for f in state.faults if prefix is not None and f.path_prefix != prefix]
        return JSONResponse({"faults": len(state.faults)})

    async def reset(request: Request) -> Response:
        state.faults.clear()
        state.counts.clear()
        state.request_ids.clear()
        state.arrivals.clear()
        state.context_headers.clear()
        state.gpconnect_jwt_claims.clear()
        return JSONResponse({"reset": True})

    async def counts(request: Request) -> Response:
        return JSONResponse(
            {
                "counts": dict(state.counts),
                "total": sum(state.counts.values()),
                "request_ids": list(state.request_ids),
                "arrivals": list(state.arrivals),
                "context_headers": list(state.context_headers),
            }
        )

    async def gpconnect_jwt(request: Request) -> Response:
        return JSONResponse({"claims": state.gpconnect_jwt_claims})

    return [
        Route("/_control/faults", add_fault, methods=["POST"]),
        Route("/_control/faults", list_faults, methods=["GET"]),
        Route("/_control/faults/clear", clear_faults, methods=["POST"]),
        Route("/_control/gpconnect/jwt", gpconnect_jwt, methods=["GET"]),
        Route("/_control/reset", reset, methods=["POST"]),
        Route("/_control/requests", counts, methods=["GET"]),
    ]
