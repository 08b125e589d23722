"""The console's trace middleware (server/console/trace_middleware.py) around a stub app:
what it traces, the final status (an exception is a 500), warnings read from the answer,
credentials never kept, and live-mode redaction of headers and outcome texts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from server import request_trace
from server.console.state import ConsoleState
from server.console.trace_middleware import MAX_SCANNED_BODY, TraceMiddleware, traced_path
from server.request_trace import REDACTED, TraceBuffer
from server.settings import Settings
from server.sources.registry import SOURCES

JSON = [(b"content-type", b"application/fhir+json")]


def console(mode: str = "sandbox") -> ConsoleState:
    return ConsoleState(mode, Settings(), tuple(SOURCES), TraceBuffer(10), dev_tokens=True)  # type: ignore[arg-type]


def answering(status: int, body: Any, headers: list[tuple[bytes, bytes]] = JSON, chunks: int = 1) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request_trace.record("cache", "cache MISS", {"result": "MISS"})
        await send({"type": "http.response.start", "status": status, "headers": headers})
        size = max(1, len(raw) // chunks)
        parts = [raw[i : i + size] for i in range(0, len(raw), size)] or [b""]
        for n, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part, "more_body": n < len(parts) - 1})

    return app


async def run(app: Any, state: ConsoleState, path: str = "/Patient/9000000009", **scope: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    full = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer secret-token"), (b"prefer", b"handling=strict")],
        "state": {"request_id": "rid-1"},
        **scope,
    }
    await TraceMiddleware(app, state)(full, receive, send)
    return sent


@pytest.mark.parametrize(
    ("path", "traced"),
    [
        ("/Patient/1", True),
        ("/", True),
        ("/pas/v1/patients/RX1", True),
        ("/_console/api/traces", False),
        ("/_health/ready", False),
        ("/metrics", False),
        ("/metadata", False),
        ("/.well-known/smart-configuration", False),
    ],
)
def test_what_is_traced(path: str, traced: bool) -> None:
    assert traced_path(path) is traced


async def test_a_request_is_stored_with_its_status_and_no_credentials() -> None:
    state = console()
    sent = await run(answering(200, {"resourceType": "Patient"}), state)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]  # passed through
    trace = state.traces.get("rid-1")
    assert trace is not None and trace.status == 200
    assert [e["kind"] for e in trace.events] == ["cache", "response"]
    assert trace.request_headers == {"authorization": REDACTED, "prefer": "handling=strict"}
    assert "secret-token" not in str(trace.as_json())


async def test_untraced_paths_leave_nothing() -> None:
    state = console()
    await run(answering(200, {}), state, path="/_console/api/config")
    assert len(state.traces) == 0


async def test_an_exception_is_a_500_trace() -> None:
    state = console()

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await run(broken, state)
    trace = state.traces.get("rid-1")
    assert trace is not None and trace.status == 500


async def test_warnings_in_a_bundle_become_conversion_events() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "AllergyIntolerance"}, "search": {"mode": "match"}},
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {"severity": "warning", "code": "incomplete", "diagnostics": "degraded record kept as text"},
                        {"severity": "information", "code": "informational", "details": {"text": "from cache"}},
                    ],
                },
                "search": {"mode": "outcome"},
            },
        ],
    }
    state = console()
    await run(answering(200, bundle, chunks=5), state, path="/AllergyIntolerance")
    trace = state.traces.get("rid-1")
    assert trace is not None
    conversions = [e for e in trace.events if e["kind"] == "conversion"]
    assert [c["detail"]["text"] for c in conversions] == ["degraded record kept as text", "from cache"]
    assert conversions[0]["label"] == "warning: degraded record kept as text"


async def test_an_error_outcome_is_on_the_trace_and_redacted_in_live_mode() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "value", "diagnostics": "family 'Smith'"}],
    }
    state = console()
    await run(answering(400, outcome), state)
    trace = state.traces.get("rid-1")
    assert trace is not None and trace.events[-2]["detail"]["text"] == "family 'Smith'"
    live = console("live")
    await run(answering(400, outcome), live)
    trace = live.traces.get("rid-1")
    assert trace is not None and "Smith" not in str(trace.as_json()) and trace.path == f"/Patient/{REDACTED}"
    assert trace.request_headers["prefer"] == "handling=strict"


async def test_bodies_that_are_not_json_or_too_big_are_not_read() -> None:
    state = console()
    await run(answering(200, b'{"search":{"mode":"outcome"}}', headers=[(b"content-type", b"text/plain")]), state)
    assert [e["kind"] for e in state.traces.recent()[0].events] == ["cache", "response"]
    huge = b'{"outcome": "' + b"x" * (MAX_SCANNED_BODY + 10) + b'"}'
    await run(answering(200, huge, chunks=3), state)
    assert [e["kind"] for e in state.traces.recent()[0].events] == ["cache", "response"]
    await run(answering(200, b'{"outcome": not json'), state)
    assert state.traces.recent()[0].status == 200
