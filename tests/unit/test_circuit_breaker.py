"""Circuit breaker state machine on a fake clock."""

from __future__ import annotations

import pytest

from server.nhs.circuit_breaker import BreakerState, CircuitBreaker
from server.nhs.refusals import CircuitOpen
from tests.support.fake_clock import FakeClock


def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("PDS", threshold=3, open_seconds=10.0, clock=clock)


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        b.failed(b.admit())


def test_opens_at_threshold_of_consecutive_failures() -> None:
    b = breaker(FakeClock())
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN


def test_success_resets_the_count() -> None:
    b = breaker(FakeClock())
    fail(b, 2)
    b.succeeded(b.admit())
    fail(b, 2)
    assert b.state is BreakerState.CLOSED


def test_open_circuit_refuses_with_time_until_probe() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(4.0)
    with pytest.raises(CircuitOpen) as info:
        b.admit()
    assert info.value.retry_after == pytest.approx(6.0)
    assert info.value.status is None


def test_half_open_admits_exactly_one_probe() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(10.0)
    assert b.state is BreakerState.HALF_OPEN
    assert b.admit() is True
    with pytest.raises(CircuitOpen):
        b.admit()


def test_probe_success_closes() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(10.0)
    b.succeeded(b.admit())
    assert b.state is BreakerState.CLOSED
    assert b.admit() is False


def test_probe_failure_reopens_for_a_full_period() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(10.0)
    b.failed(b.admit())
    assert b.state is BreakerState.OPEN
    clock.advance(9.9)
    assert b.state is BreakerState.OPEN
    clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN


def test_abandoned_probe_lets_the_next_call_probe() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(10.0)
    b.abandoned(b.admit())
    assert b.admit() is True


def test_late_failures_do_not_extend_the_open_period() -> None:
    clock = FakeClock()
    b = breaker(clock)
    probes = [b.admit() for _ in range(5)]  # five calls in flight while closed
    for p in probes[:3]:
        b.failed(p)
    clock.advance(5.0)
    for p in probes[3:]:
        b.failed(p)
    assert b.seconds_until_probe() == pytest.approx(5.0)
