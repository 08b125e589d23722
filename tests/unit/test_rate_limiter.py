"""Token bucket on a fake clock: even spacing, queueing, refusal past the budget."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.nhs.deadline import Deadline
from server.nhs.rate_limiter import TokenBucket
from server.nhs.refusals import NoSlot
from tests.support.fake_clock import FakeClock


def test_first_request_is_free_then_spaced_by_one_over_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket("PDS", 5.0, clock)
    waits = [bucket.reserve(10.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6])


def test_refill_after_idle_is_capped_at_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket("PDS", 5.0, clock)
    bucket.reserve(10.0)
    clock.advance(60.0)
    assert bucket.reserve(10.0) == 0.0
    assert bucket.reserve(10.0) == pytest.approx(0.2)


def test_wait_past_max_takes_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket("PDS", 5.0, clock)
    bucket.reserve(10.0)
    assert bucket.reserve(0.1) is None
    assert bucket.reserve(0.2) == pytest.approx(0.2)  # the refused call did not consume a token


@settings(max_examples=50)
@given(rate=st.floats(0.5, 50), n=st.integers(1, 40))
def test_n_reservations_never_exceed_rate(rate: float, n: int) -> None:
    bucket = TokenBucket("X", rate, FakeClock())
    waits = [bucket.reserve(1e9) for _ in range(n)]
    assert waits[-1] == pytest.approx((n - 1) / rate)


async def test_acquire_sleeps_then_refuses_past_deadline() -> None:
    clock = FakeClock()
    bucket = TokenBucket("PDS", 5.0, clock)
    deadline = Deadline.after(clock, 0.3)
    await bucket.acquire(deadline)
    await bucket.acquire(deadline)
    assert clock.sleeps == pytest.approx([0.2])
    with pytest.raises(NoSlot) as info:
        await bucket.acquire(deadline)  # next slot in 0.2s, only 0.1s left
    assert info.value.retry_after == pytest.approx(0.2)


def test_rejects_nonsense_rates() -> None:
    with pytest.raises(ValueError):
        TokenBucket("PDS", 0, FakeClock())


class _Parked:
    """A clock whose sleep never returns on its own: the waiter sits in its sleep until cancelled."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


async def test_a_waiter_cancelled_in_its_sleep_gives_its_token_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket("PDS", 5.0, _Parked(clock))
    assert bucket.reserve(10.0) == 0.0
    waiter = asyncio.ensure_future(bucket.acquire(Deadline.after(clock, 10.0)))
    await asyncio.sleep(0)  # reserved the 0.2 s slot, now sleeping
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bucket.next_free_in() == pytest.approx(0.2)  # the slot is free again, not pushed to 0.4


async def test_a_cancelled_waiter_with_others_queued_behind_keeps_its_token() -> None:
    """Giving back a slot in the middle of the queue would let a newcomer share the next
    waiter's instant (two requests at once: spike arrest); the slot is lost instead."""
    clock = FakeClock()
    bucket = TokenBucket("PDS", 5.0, _Parked(clock))
    bucket.reserve(10.0)
    waiter = asyncio.ensure_future(bucket.acquire(Deadline.after(clock, 10.0)))
    await asyncio.sleep(0)
    assert bucket.reserve(10.0) == pytest.approx(0.4)  # queued behind the waiter
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bucket.next_free_in() == pytest.approx(0.6)
