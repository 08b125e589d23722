"""W3C traceparent parsing (server/trace_context.py): never raises, keeps only what the
recommendation allows, and round-trips every valid header."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.trace_context import TraceParent, inbound_trace, new_trace, parse_traceparent

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
lower_hex = st.text(alphabet="0123456789abcdef", min_size=1, max_size=1)


def hex_digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)


valid_parents = st.builds(
    TraceParent,
    trace_id=hex_digits(32).filter(lambda s: s != "0" * 32),
    span_id=hex_digits(16).filter(lambda s: s != "0" * 16),
    flags=hex_digits(2),
)


@given(st.text())
def test_any_text_is_parsed_or_ignored_never_raised(value: str) -> None:
    parsed = parse_traceparent(value)
    assert parsed is None or parse_traceparent(parsed.header()) == parsed


@given(valid_parents)
def test_a_valid_header_round_trips(parent: TraceParent) -> None:
    assert parse_traceparent(parent.header()) == parent


@given(valid_parents)
def test_a_child_keeps_the_trace_and_flags_with_a_new_span(parent: TraceParent) -> None:
    child = parent.child()
    assert (child.trace_id, child.flags) == (parent.trace_id, parent.flags)
    assert parse_traceparent(child.header()) == child


def test_the_recommendations_example_is_accepted() -> None:
    assert parse_traceparent(VALID) == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")


@pytest.mark.parametrize(
    "value",
    [
        "",
        VALID.upper(),  # HEXDIGLC only
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff" + VALID[2:],  # version ff is invalid
        VALID + "-extra",  # version 00 is exactly 55 characters
        VALID[:-1],  # too short
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    ],
)
def test_invalid_headers_are_ignored(value: str) -> None:
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_by_its_version_00_fields() -> None:
    assert parse_traceparent("cc" + VALID[2:] + "-what-comes-later") == parse_traceparent(VALID)
    assert parse_traceparent("cc" + VALID[2:] + "x") is None  # more only after a "-"


def test_the_facade_span_joins_a_valid_trace_or_starts_one() -> None:
    joined = inbound_trace(VALID)
    assert joined.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and joined.span_id != "00f067aa0ba902b7"
    started = inbound_trace("garbage")
    assert started.flags == "00" and parse_traceparent(started.header()) == started
    assert new_trace().trace_id != new_trace().trace_id
