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
