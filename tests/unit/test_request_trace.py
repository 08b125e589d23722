"""The console's request trace recorder (server/request_trace.py): events, bounds, the ring
buffer, the hooks' no-op when no trace is open, and live-mode redaction (a property: no
NHS number survives, whatever the path or query)."""

from __future__ import annotations

import asyncio
import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from server import metrics, request_trace
from server.request_trace import (
    MAX_EVENTS,
    MAX_TEXT,
    REDACTED,
    Trace,
    TraceBuffer,
    redact_headers,
    redact_path,
    redact_query,
    redact_text,
    tracing,
)

TEN_DIGITS = re.compile(r"[0-9]{10}")
SPACED_NHS = re.compile(r"[0-9]{3}[ -][0-9]{3}[ -][0-9]{4}")


def digits_only(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)


# ---- the recorder -------------------------------------------------------------------------


def test_events_are_placed_from_the_start_of_the_request() -> None:
    trace = Trace("rid", "GET", "/Patient/9000000009")
    trace.add("cache", "cache MISS", {"result": "MISS"})
    trace.add("nhs", "PDS GET", {"status": 200}, duration=0.01)
    trace.finish(200)
    assert [e["kind"] for e in trace.events] == ["cache", "nhs", "response"]
    assert trace.status == 200 and trace.duration_ms is not None and trace.duration_ms >= 0
    assert trace.events[1]["duration_ms"] == 10.0 and trace.events[0]["duration_ms"] is None
    assert all(e["at_ms"] <= trace.duration_ms + 0.001 for e in trace.events)
    assert trace.events[-1]["detail"] == {"status": 200}


def test_an_unknown_kind_is_filed_under_response() -> None:
    trace = Trace("rid", "GET", "/")
    trace.add("mystery", "x")
    assert trace.events[0]["kind"] == "response"


def test_events_and_strings_are_bounded_and_the_final_status_always_fits() -> None:
    trace = Trace("rid", "GET", "/Patient")
    for n in range(MAX_EVENTS + 50):
        trace.add("retry", "x" * (MAX_TEXT * 2), {"n": n, "long": "y" * 5000})
    assert len(trace.events) == MAX_EVENTS and trace.dropped == 50
    assert all(len(e["label"]) <= MAX_TEXT and len(e["detail"]["long"]) <= MAX_TEXT for e in trace.events)
    trace.finish(503)
    assert len(trace.events) == MAX_EVENTS and trace.events[-1]["kind"] == "response"
    assert trace.as_json()["dropped_events"] == 51


def test_details_are_copied_when_recorded() -> None:
    trace = Trace("rid", "GET", "/")
    detail = {"list": [1, 2], "other": object()}
    trace.add("nhs", "x", detail)
    detail["list"].append(3)
    assert trace.events[0]["detail"]["list"] == [1, 2] and isinstance(trace.events[0]["detail"]["other"], str)


def test_summary_and_json_shape() -> None:
    trace = Trace("rid", "GET", "/Patient", "family=Smith")
    trace.keep_headers(
        [(b"Accept", b"application/fhir+json"), (b"authorization", b"Bearer x")], frozenset({"authorization"})
    )
    trace.finish(200)
    assert set(trace.summary()) == {
        "request_id",
        "started",
        "method",
        "path",
        "query",
        "status",
        "duration_ms",
        "events",
        "redacted",
    }
    assert trace.summary()["events"] == 1 and trace.as_json()["request_headers"] == {
        "accept": "application/fhir+json",
        "authorization": REDACTED,
    }
    assert trace.started.endswith("+00:00")


# ---- the ring buffer -----------------------------------------------------------------------


def test_the_buffer_keeps_the_newest_and_is_clamped() -> None:
    assert TraceBuffer(1).capacity == 10 and TraceBuffer(10**9).capacity == 10_000
    buffer = TraceBuffer(10)
    for n in range(25):
        buffer.store(Trace(f"r{n}", "GET", "/"))
    assert len(buffer) == 10
    assert [t.request_id for t in buffer.recent()] == [f"r{n}" for n in range(24, 14, -1)]
    assert buffer.get("r14") is None and buffer.get("r15") is not None
    assert [t.request_id for t in buffer.recent(2)] == ["r24", "r23"] and buffer.recent(0) == []


def test_a_reused_request_id_keeps_the_latest_trace() -> None:
    buffer = TraceBuffer(10)
    first, second = Trace("same", "GET", "/a"), Trace("same", "GET", "/b")
    buffer.store(first)
    buffer.store(Trace("other", "GET", "/"))
    buffer.store(second)
    assert buffer.get("same") is second and len(buffer) == 2
    assert [t.request_id for t in buffer.recent()] == ["same", "other"]
    buffer.clear()
    assert len(buffer) == 0


# ---- hooks -----------------------------------------------------------------------------------


def test_hooks_do_nothing_without_a_trace() -> None:
    assert request_trace.current() is None
    request_trace.record("access", "x")
    request_trace.cache("HIT")
    request_trace.retry("PDS", 2, 0.1, "HTTP 503")
    request_trace.rate_limit_wait("PDS", 1.0)
    request_trace.circuit("PDS", "open")
    request_trace.single_flight_join("PDS")
    request_trace.nhs_call("PDS", "GET", "Patient/1", status=200, outcome="ok", started=0.0)
    assert request_trace.begin_attempt(2) is None
    request_trace.end_attempt(None)
    metrics.cache_result("MISS")  # the metrics hook calls through


def test_hooks_record_into_the_open_trace_with_the_attempt_number() -> None:
    trace = Trace("rid", "GET", "/Patient/9000000009")
    with tracing(trace):
        metrics.cache_result("STALE")
        token = request_trace.begin_attempt(2)
        request_trace.nhs_call(
            "PDS", "GET", "Patient/9000000009", status=503, outcome="5xx", started=0.0, attempt_id="a"
        )
        request_trace.end_attempt(token)
        request_trace.nhs_call("PDS", "GET", "Patient/9000000009", status=200, outcome="ok", started=0.0)
        request_trace.retry("PDS", 3, 0.25, "HTTP 503")
        request_trace.rate_limit_wait("PDS", 0.0)  # no wait: not worth an event
        request_trace.rate_limit_wait("PDS", 0.2)
        request_trace.circuit("PDS", "open", "failing fast")
        request_trace.single_flight_join("PDS")
    assert request_trace.current() is None
    kinds = [e["kind"] for e in trace.events]
    assert kinds == ["cache", "nhs", "nhs", "retry", "rate_limit", "circuit", "single_flight"]
    assert trace.events[1]["detail"]["attempt"] == 2 and trace.events[1]["detail"]["nhs_request_id"] == "a"
    assert "(attempt 2)" in trace.events[1]["label"] and trace.events[2]["detail"]["attempt"] == 1
    assert trace.events[3]["detail"] == {"api": "PDS", "next_attempt": 3, "delay_s": 0.25, "reason": "HTTP 503"}


async def test_tasks_started_in_a_request_record_into_its_trace() -> None:
    """A single-flight leader's task inherits the context: its NHS calls are its request's."""
    trace = Trace("rid", "GET", "/")

    async def leader() -> None:
        request_trace.record("nhs", "from a task")

    with tracing(trace):
        await asyncio.ensure_future(leader())
    assert [e["label"] for e in trace.events] == ["from a task"]


# ---- redaction (live mode) ------------------------------------------------------------------


def test_a_live_trace_is_redacted_as_it_is_recorded() -> None:
    trace = Trace(
        "rid", "GET", "/Patient/9000000009/$everything", "family=Smith&_count=5&identifier=x|9000000009", redact=True
    )
    assert trace.path == f"/Patient/{REDACTED}/$everything"
    assert "Smith" not in trace.query and "_count=5" in trace.query and "9000000009" not in trace.query
    with tracing(trace):
        request_trace.nhs_call("PDS", "GET", "Patient/9000000009", status=200, outcome="ok", started=0.0)
        request_trace.nhs_call(
            "PDS",
            "GET",
            "Patient",
            status=200,
            outcome="ok",
            started=0.0,
            params=[("family", "Smith"), ("_max-results", "1")],
        )
        request_trace.record(
            "conversion", "warning for 900 000 0009", {"text": "pas-RX123 and eyJhbGciOi.eyJzdWIi.sig"}
        )
    text = str(trace.as_json())
    assert "9000000009" not in text and "900 000 0009" not in text and "RX123" not in text and "eyJ" not in text
    assert trace.events[0]["detail"]["path"] == f"Patient/{REDACTED}"
    assert trace.events[1]["detail"]["query"] == f"family={REDACTED}&_max-results=1" and "Smith" not in text


def test_a_sandbox_trace_keeps_what_it_was_given() -> None:
    trace = Trace("rid", "GET", "/Patient/9000000009", "family=Smith")
    trace.add("nhs", "9000000009", {"path": "Patient/9000000009"})
    with tracing(trace):
        request_trace.nhs_call(
            "PDS", "GET", "Patient", status=200, outcome="ok", started=0.0, params=[("family", "Sm th")]
        )
    assert trace.path == "/Patient/9000000009" and trace.query == "family=Smith"
    assert trace.events[0]["label"] == "9000000009"
    assert trace.events[1]["detail"]["query"] == "family=Sm+th"
    assert trace.events[1]["label"] == "PDS GET Patient?family=Sm+th -> 200"


def test_paths_keep_their_structure_only() -> None:
    assert redact_path("/Patient/_search") == "/Patient/_search"
    assert redact_path("/pas/v1/patients/RX12345") == f"/pas/v1/patients/{REDACTED}"
    assert redact_path("/Patient/pas-RX1/_history/2") == f"/Patient/{REDACTED}/_history/2"
    assert redact_path("/ServiceRequest/ers.000000070000.r.5c0e") == f"/ServiceRequest/{REDACTED}"
    assert redact_path("/") == "/"


def test_headers_keep_an_allow_list() -> None:
    kept = redact_headers({"Prefer": "handling=strict", "nhsd-session-urid": "555", "X-NHS-User-Token": "secret"})
    assert kept == {"Prefer": "handling=strict", "nhsd-session-urid": REDACTED, "X-NHS-User-Token": REDACTED}


def test_text_redaction_finds_numbers_as_written() -> None:
    assert (
        redact_text("NHS 943 476 5919 and 943-476-5919 and 9434765919")
        == f"NHS {REDACTED} and {REDACTED} and {REDACTED}"
    )
    assert redact_text("version 2 at 12:00") == "version 2 at 12:00"


_path_chars = st.sampled_from(string.ascii_letters + string.digits + "/-_.$ %+")
_queries = st.lists(
    st.tuples(st.text(string.ascii_letters + "_-:.0123456789", max_size=12), st.text(max_size=40)), max_size=6
)


@settings(max_examples=300)
@given(
    path=st.text(_path_chars, max_size=120), nhs=st.from_regex(r"[0-9]{10}", fullmatch=True), where=st.integers(0, 120)
)
def test_no_nhs_number_survives_path_redaction(path: str, nhs: str, where: int) -> None:
    path = path[:where] + nhs + path[where:]
    redacted = redact_path(path)
    assert not TEN_DIGITS.search(redacted)
    assert not any(TEN_DIGITS.search(digits_only(segment)) for segment in redacted.split("/"))


@settings(max_examples=300)
@given(
    pairs=_queries, nhs=st.from_regex(r"[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}", fullmatch=True), into_name=st.booleans()
)
def test_no_nhs_number_survives_query_redaction(pairs: list[tuple[str, str]], nhs: str, into_name: bool) -> None:
    from urllib.parse import quote, unquote

    pairs = [*pairs, (nhs, "x") if into_name else ("_count", nhs)]
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)
    redacted = unquote(redact_query(query))
    assert not TEN_DIGITS.search(redacted) and not SPACED_NHS.search(redacted)


@given(text=st.text(max_size=200), nhs=st.from_regex(r"[0-9]{10}", fullmatch=True))
def test_no_ten_digit_run_survives_text_redaction(text: str, nhs: str) -> None:
    assert not TEN_DIGITS.search(redact_text(text + nhs + text))
