"""Per-request traces for the console (issue 12): what the façade did with one request.

A `Trace` is a timeline of events (access decision, cache lookup, each NHS call and its
retries, rate-limit waits, single-flight joins, circuit refusals, conversion warnings,
the final status) that the console shows as a waterfall and serves as JSON. The trace
middleware (server/console/trace_middleware.py) opens one per /FHIR or /pas request and
stores it, finished, in a `TraceBuffer`: a bounded ring per process.

Cost when off: the hooks (`record`, `cache`, `nhs_call`, ...) read one ContextVar and
return when it holds None, which it always does when the console is off (its middleware
is then not installed at all). A single-flight leader's task inherits the leader's
context, so its NHS calls land in the leader's trace; a joiner's trace shows the join.

Privacy: in live mode (`Trace(redact=True)`) patient identifiers never reach the buffer:
paths, queries and event details are redacted as they are recorded (`redact_path`,
`redact_query`, `redact_value`), before anything is stored. In sandbox mode the data is
synthetic and kept as is. Trace contents are never logged, in either mode.

A low layer module like server.metrics: it imports only the standard library, because
server.nhs records into it.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

EVENT_KINDS = frozenset(
    {"access", "cache", "nhs", "single_flight", "rate_limit", "circuit", "retry", "conversion", "response"}
)
MAX_EVENTS = 200  # per trace: a runaway loop of retries or includes cannot grow one without bound
MAX_TEXT = 300  # characters of any one string kept in a trace
MIN_CAPACITY, MAX_CAPACITY = 10, 10_000
REDACTED = "…redacted…"

# NHS numbers as written (10 digits, optionally 3-3-4 with spaces or hyphens), PAS patient
# ids and the hospital numbers inside them, and anything that looks like a bearer token.
_NHS_NUMBER = re.compile(r"(?<![0-9])[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}(?![0-9])")
_DIGIT_RUN = re.compile(r"[0-9]{10,}")
_PAS_ID = re.compile(r"pas-[^/?&#\s]*", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
# Path segments that are structure, not data: resource types and words ("Patient",
# "personal-demographics"), operations and search suffixes ("$everything", "_search"),
# versions ("v1", "R4", "STU3"). Every other segment (ids, numbers, UBRNs) is redacted.
_STRUCTURAL_SEGMENT = re.compile(r"[$_]?[A-Za-z][A-Za-z-]*|v[0-9]{1,2}|R4|STU3|[0-9]")
# Query parameters whose values say how to answer, not whom about: kept in live mode.
KEPT_QUERY_PARAMS = frozenset(
    {
        "_count",
        "_sort",
        "_summary",
        "_elements",
        "_format",
        "_include",
        "_revinclude",
        "_total",
        "_pretty",
        "_max-results",
        "_fuzzy-match",
        "_exact-match",
        "_history",
        "includeResolved",
    }
)
# Header names whose values a trace may keep in live mode (none carries a patient or a secret).
KEPT_HEADERS = frozenset(
    {
        "accept",
        "content-type",
        "cache-control",
        "prefer",
        "x-cache",
        "x-request-id",
        "x-correlation-id",
        "retry-after",
        "etag",
        "age",
        "warning",
        "x-purpose-of-use",
    }
)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def redact_text(text: str) -> str:
    """Free text with NHS numbers, PAS ids, long digit runs and JWTs replaced."""
    text = _JWT.sub(REDACTED, text)
    text = _PAS_ID.sub(REDACTED, text)
    text = _NHS_NUMBER.sub(REDACTED, text)
    return _DIGIT_RUN.sub(REDACTED, text)


def redact_path(path: str) -> str:
    """A URL path with every segment that is not structure (see _STRUCTURAL_SEGMENT) replaced."""
    return "/".join(
        segment if not segment or _STRUCTURAL_SEGMENT.fullmatch(segment) else REDACTED for segment in path.split("/")
    )


def redact_query(query: str) -> str:
    """A query string with values redacted but those of KEPT_QUERY_PARAMS, which (like every
    name) still lose anything that looks like an identifier."""
    pairs = parse_qsl(query, keep_blank_values=True)
    out = []
    marker = quote(REDACTED)
    for name, value in pairs:
        shown = quote(redact_text(value), safe="_-.:,$") if name in KEPT_QUERY_PARAMS else marker
        out.append(f"{quote(redact_text(name), safe='_-.:$')}={shown}".replace(marker, REDACTED))
    return "&".join(out)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: redact_text(v) if k.lower() in KEPT_HEADERS else REDACTED for k, v in headers.items()}


def redact_value(value: Any) -> Any:
    """Any event detail: strings through redact_text, containers walked."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def _keep(value: Any) -> Any:
    """Details as recorded, strings clipped, containers copied (so later changes do not leak in)."""
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, Mapping):
        return {str(k): _keep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_keep(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _clip(str(value))


_PLAIN = (str, int, float, bool, type(None))


class Trace:
    """One request's timeline. `redact`: live mode, identifiers removed as they are recorded.

    Events are kept as tuples of raw perf_counter offsets and turned into JSON-ready dicts
    only when read (`events`, `as_json`): recording runs on every traced request, reading
    only when someone looks. Likewise the request headers are kept as received and
    decoded when read, except in live mode, where they are redacted before they are kept.
    """

    __slots__ = (
        "request_id",
        "method",
        "path",
        "query",
        "redact",
        "started_at",
        "origin",
        "status",
        "duration_ms",
        "dropped",
        "_events",
        "_raw_headers",
        "_secret",
        "_headers",
    )

    def __init__(self, request_id: str, method: str, path: str, query: str = "", *, redact: bool = False) -> None:
        self.request_id = request_id
        self.method = method
        self.path = _clip(redact_path(path) if redact else path)
        self.query = _clip(redact_query(query) if redact and query else query)
        self.redact = redact
        self.started_at = time.time()  # wall clock, formatted only when read
        self.origin = time.perf_counter()
        self.status: int | None = None
        self.duration_ms: float | None = None
        self.dropped = 0  # events past MAX_EVENTS, counted not kept
        self._events: list[tuple[float, float | None, str, str, dict[str, Any]]] = []
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._secret: frozenset[str] = frozenset()
        self._headers: dict[str, str] | None = None

    def keep_headers(self, raw: list[tuple[bytes, bytes]], secret: frozenset[str]) -> None:
        """The request's headers; those named in `secret` (credentials) shown as present only."""
        if self.redact:
            self._headers = redact_headers(_decoded(raw, secret))
        else:
            self._raw_headers = list(raw)
            self._secret = secret

    @property
    def request_headers(self) -> dict[str, str]:
        if self._headers is not None:
            return dict(self._headers)
        return _decoded(self._raw_headers, self._secret)

    def elapsed_ms(self, at: float | None = None) -> float:
        return round(((time.perf_counter() if at is None else at) - self.origin) * 1000, 3)

    def add(
        self,
        kind: str,
        label: str,
        detail: Mapping[str, Any] | None = None,
        *,
        started: float | None = None,
        duration: float | None = None,
    ) -> None:
        """Record an event; `started` (perf_counter) places it, `duration` seconds sizes it.
        Without `started`, an event with a duration is placed to end now."""
        if len(self._events) >= MAX_EVENTS:
            self.dropped += 1
            return
        if started is None:
            now = time.perf_counter()
            started = now - duration if duration is not None else now
        kept = _keep_detail(detail) if detail else {}
        label = label if len(label) <= MAX_TEXT else _clip(label)
        if self.redact:
            kept = redact_value(kept)
            label = redact_text(label)
        self._events.append((started - self.origin, duration, kind if kind in EVENT_KINDS else "response", label, kept))

    def finish(self, status: int) -> None:
        """The final status, and the request's duration (to the end of the response)."""
        now = time.perf_counter()
        self.status = status
        self.duration_ms = self.elapsed_ms(now)
        if len(self._events) >= MAX_EVENTS:  # the final status always fits
            self._events.pop()
            self.dropped += 1
        self.add("response", f"answered {status}", {"status": status}, started=now)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [
            {
                "at_ms": round(at * 1000, 3),
                "duration_ms": round(duration * 1000, 3) if duration is not None else None,
                "kind": kind,
                "label": label,
                "detail": detail,
            }
            for at, duration, kind, label, detail in self._events
        ]

    @property
    def started(self) -> str:
        """When the request arrived, ISO 8601 in UTC."""
        return datetime.fromtimestamp(self.started_at, UTC).isoformat(timespec="milliseconds")

    def summary(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "started": self.started,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "events": len(self._events),
            "redacted": self.redact,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "request_headers": self.request_headers,
            "events": self.events,
            "dropped_events": self.dropped,
        }


def _keep_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an event's detail: flat values as they are (strings clipped), the rest via _keep."""
    return {
        str(k): v if type(v) in _PLAIN and (type(v) is not str or len(v) <= MAX_TEXT) else _keep(v)
        for k, v in detail.items()
    }


def _decoded(raw: list[tuple[bytes, bytes]], secret: frozenset[str]) -> dict[str, str]:
    headers = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        headers[name] = REDACTED if name in secret else _clip(raw_value.decode("latin-1"))
    return headers


class TraceBuffer:
    """The last `capacity` finished traces of this process, by request id (oldest evicted)."""

    def __init__(self, capacity: int = 500) -> None:
        self.capacity = max(MIN_CAPACITY, min(MAX_CAPACITY, capacity))
        self._traces: OrderedDict[str, Trace] = OrderedDict()

    def __len__(self) -> int:
        return len(self._traces)

    def store(self, trace: Trace) -> None:
        self._traces.pop(trace.request_id, None)  # a client reusing an X-Request-ID: the latest wins
        self._traces[trace.request_id] = trace
        while len(self._traces) > self.capacity:
            self._traces.popitem(last=False)

    def get(self, request_id: str) -> Trace | None:
        return self._traces.get(request_id)

    def recent(self, limit: int | None = None) -> list[Trace]:
        """Newest first."""
        traces = list(reversed(self._traces.values()))
        return traces if limit is None else traces[: max(0, limit)]

    def clear(self) -> None:
        self._traces.clear()


_current: ContextVar[Trace | None] = ContextVar("facade_request_trace", default=None)
# The attempt number of the NHS request being sent in this task (set by server.nhs.resilience
# only while a trace is open, so an untraced request pays nothing for it).
_attempt: ContextVar[int] = ContextVar("facade_request_trace_attempt", default=1)


def current() -> Trace | None:
    return _current.get()


@contextlib.contextmanager
def tracing(trace: Trace) -> Iterator[Trace]:
    """Make `trace` the current request's for the block (tasks started inside inherit it)."""
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)


# The hooks: each a no-op (one ContextVar read) when no trace is open.


def record(kind: str, label: str, detail: Mapping[str, Any] | None = None, *, duration: float | None = None) -> None:
    trace = _current.get()
    if trace is not None:
        trace.add(kind, label, detail, duration=duration)


def cache(result: str) -> None:
    """A read-through cache lookup ended HIT, MISS, STALE or REVALIDATED."""
    trace = _current.get()
    if trace is not None:
        trace.add("cache", f"cache {result}", {"result": result})


def nhs_call(
    api: str,
    method: str,
    path: str,
    *,
    status: int | None,
    outcome: str,
    started: float,
    attempt_id: str | None = None,
    params: Sequence[tuple[str, str]] | None = None,
) -> None:
    """One HTTP exchange with an NHS API (started: perf_counter before it was sent)."""
    trace = _current.get()
    if trace is None:
        return
    duration = time.perf_counter() - started
    query = urlencode(list(params)) if params else ""
    if trace.redact:  # redacted here too, so the label never holds what the detail hides
        path, query = redact_path(path), redact_query(query) if query else ""
    number = _attempt.get()
    label = f"{api} {method} {path}{'?' + query if query else ''} -> {status if status is not None else outcome}"
    label += f" (attempt {number})" if number > 1 else ""
    detail: dict[str, Any] = {
        "api": api,
        "method": method,
        "path": path,
        "query": query,
        "status": status,
        "outcome": outcome,
        "attempt": number,
    }
    if attempt_id is not None:
        detail["nhs_request_id"] = attempt_id
    trace.add("nhs", label, detail, started=started, duration=duration)


def begin_attempt(number: int) -> Token[int] | None:
    """Attempt `number` (1 = the first) of a logical NHS request starts in this task: the
    NHS calls recorded until `end_attempt` carry it. None (nothing set) when not tracing."""
    if _current.get() is None:
        return None
    return _attempt.set(number)


def end_attempt(token: Token[int] | None) -> None:
    if token is not None:
        _attempt.reset(token)


def retry(api: str, attempt_number: int, delay: float, reason: str) -> None:
    """A failed attempt will be retried after `delay` seconds."""
    trace = _current.get()
    if trace is not None:
        trace.add(
            "retry",
            f"{api} retry in {delay:.2f}s after {reason}",
            {"api": api, "next_attempt": attempt_number, "delay_s": round(delay, 3), "reason": reason},
        )


def rate_limit_wait(api: str, seconds: float) -> None:
    trace = _current.get()
    if trace is not None and seconds > 0.0005:
        trace.add(
            "rate_limit", f"{api} waited {seconds * 1000:.0f} ms for the rate limit", {"api": api}, duration=seconds
        )


def circuit(api: str, state: str, detail: str = "") -> None:
    trace = _current.get()
    if trace is not None:
        trace.add("circuit", f"{api} circuit {state}", {"api": api, "state": state, "detail": detail})


def single_flight_join(name: str) -> None:
    trace = _current.get()
    if trace is not None:
        trace.add("single_flight", f"joined a {name} call already in flight", {"name": name})
