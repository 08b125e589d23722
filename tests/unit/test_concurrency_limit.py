"""Concurrency limit: N holders at most; a waiter past its budget gets NoSlot."""

from __future__ import annotations

import asyncio

import pytest

from server.nhs.clock import MonotonicClock
from server.nhs.concurrency_limit import ConcurrencyLimit
from server.nhs.deadline import Deadline
from server.nhs.refusals import NoSlot


async def test_never_more_than_limit_in_flight() -> None:
    limit = ConcurrencyLimit("PDS", 3)
    clock = MonotonicClock()
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with limit.slot(Deadline.after(clock, 5.0)):
            peak = max(peak, limit.in_flight)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(work() for _ in range(12)))
    assert peak == 3
    assert limit.in_flight == 0


async def test_waiter_past_budget_is_refused_and_slot_is_not_leaked() -> None:
    limit = ConcurrencyLimit("PDS", 1)
    clock = MonotonicClock()
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.slot(Deadline.after(clock, 5.0)):
            holding.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await holding.wait()
    with pytest.raises(NoSlot):
        async with limit.slot(Deadline.after(clock, 0.02)):
            pass
    release.set()
    await task
    async with limit.slot(Deadline.after(clock, 0.5)):
        assert limit.in_flight == 1


async def test_a_free_slot_is_taken_even_with_the_budget_spent_and_released_on_error() -> None:
    # As before the fast path: a free slot never waits, so an exhausted budget does not
    # refuse it (the resilience layer then reports the spent budget as a timeout itself).
    limit = ConcurrencyLimit("PDS", 1)
    clock = MonotonicClock()
    spent = Deadline.after(clock, 0.0)
    async with limit.slot(spent):
        assert limit.in_flight == 1
        with pytest.raises(NoSlot):  # now busy: a waiter with no budget is refused at once
            async with limit.slot(spent):
                pass
    with pytest.raises(LookupError):
        async with limit.slot(spent):
            raise LookupError("the attempt failed")
    assert limit.in_flight == 0
    async with limit.slot(spent):  # the slot came back
        assert limit.in_flight == 1


async def test_a_waiter_gets_the_slot_a_holder_releases_within_its_budget() -> None:
    limit = ConcurrencyLimit("PDS", 1)
    clock = MonotonicClock()
    order: list[str] = []

    async def holder() -> None:
        async with limit.slot(Deadline.after(clock, 5.0)):
            order.append("held")
            await asyncio.sleep(0.01)
        order.append("released")

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    async with limit.slot(Deadline.after(clock, 5.0)):
        order.append("waiter")
    await task
    assert order == ["held", "released", "waiter"] and limit.in_flight == 0
