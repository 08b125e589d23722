"""The emulator remembers a bounded number of requests: `make run` serves for hours, and
a list entry per NHS request grew its heap without end."""

from __future__ import annotations

from collections import deque
from typing import Any

from server.sandbox.faults import OTHER_PATHS, EmulatorState, FaultMiddleware


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _get(app: FaultMiddleware, path: str, request_id: str) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"x-request-id", request_id.encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


async def test_only_the_newest_requests_are_remembered_and_every_one_is_counted() -> None:
    state = EmulatorState(remembered=5)
    app = FaultMiddleware(_answer, state)
    for n in range(12):
        await _get(app, f"/personal-demographics/FHIR/R4/Patient/{n}", f"id-{n}")
    await _get(app, "/personal-demographics/FHIR/R4/Patient/0", "id-again")
    assert list(state.request_ids) == ["id-8", "id-9", "id-10", "id-11", "id-again"]
    assert len(state.arrivals) == 5 and len(state.context_headers) == 5
    assert state.context_headers[-1]["x-request-id"] == "id-again"
    assert sum(state.counts.values()) == 13
    assert state.counts["GET /personal-demographics/FHIR/R4/Patient/0"] == 2  # a path already counted keeps counting
    assert state.counts[OTHER_PATHS] == 7 and len(state.counts) == 6


def test_the_bound_holds_for_state_made_with_requests_already_in_it() -> None:
    state = EmulatorState(request_ids=deque(["a", "b", "c"]), remembered=2)
    assert list(state.request_ids) == ["b", "c"] and state.request_ids.maxlen == 2
