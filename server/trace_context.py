"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header.

A caller's `traceparent` is accepted when it is well formed; anything else (a bad
version, upper-case or non-hex digits, an all-zero id, a wrong length) is ignored and the
façade starts a new trace, as the recommendation asks. Each NHS call is a child span:
the same trace id, a fresh span id, the caller's flags. Ids are random hex, never
derived from the request, so a trace id carries no patient data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.random_ids import random_hex

# version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex only (HEXDIGLC).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", re.ASCII)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# A version-00 header is exactly 55 characters; a later version may append "-" and more.
_V00_LENGTH = 55


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One span's place in a trace: `span_id` is the span this header names as parent."""

    trace_id: str  # 32 lower-case hex digits, not all zero
    span_id: str  # 16 lower-case hex digits, not all zero
    flags: str = "00"  # 2 hex digits; bit 0 = sampled

    def header(self) -> str:
        """The header value, always version 00 (the only version this façade speaks)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceParent:
        """A new span in the same trace (an outbound call)."""
        return TraceParent(self.trace_id, _new_span_id(), self.flags)


def _new_span_id() -> str:
    while (span := random_hex(8)) == _ZERO_SPAN:  # pragma: no cover - 2**-64
        pass
    return span


def new_trace() -> TraceParent:
    """A trace this façade starts (no usable inbound header): not sampled."""
    while (trace := random_hex(16)) == _ZERO_TRACE:  # pragma: no cover - 2**-128
        pass
    return TraceParent(trace, _new_span_id(), "00")


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The inbound header as a TraceParent, or None when absent or invalid. Never raises."""
    if not value:
        return None
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version == "00" and len(value) != _V00_LENGTH:
        return None
    if len(value) > _V00_LENGTH and value[_V00_LENGTH] != "-":
        return None  # a later version may add fields, but only after a "-"
    return TraceParent(trace_id, span_id, flags)


def inbound_trace(value: str | None) -> TraceParent:
    """This request's span: a child of the caller's trace when its header is valid, else a
    new trace. The façade's own span id is fresh either way."""
    parent = parse_traceparent(value)
    return parent.child() if parent is not None else new_trace()
