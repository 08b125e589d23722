"""bounded_gather: CPT detail calls run concurrently, never more than the limit at once."""

from __future__ import annotations

import asyncio

import pytest

from server.sources.cpt.provider import bounded_gather


async def test_never_more_than_limit_in_flight_and_results_in_order() -> None:
    in_flight = peak = 0

    async def work(n: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return n

    results = await bounded_gather([lambda n=n: work(n) for n in range(10)], 3)
    assert results == list(range(10))
    assert peak == 3


async def test_first_failure_propagates_and_cancels_the_rest() -> None:
    finished: list[int] = []

    async def work(n: int) -> int:
        if n == 0:
            raise ValueError("boom")
        await asyncio.sleep(0.2)
        finished.append(n)
        return n

    with pytest.raises(ValueError, match="boom"):
        await bounded_gather([lambda n=n: work(n) for n in range(4)], 4)
    await asyncio.sleep(0.25)
    assert finished == []
