"""Single-flight's memory of finished flights (the cache's `reuse_for`): one sweep timer,
not one timer per flight, and a remembered result is never reused past its window even
when the sweep runs late."""

from __future__ import annotations

import asyncio
import time

from server.nhs.single_flight import SingleFlight


class Calls:
    """An upstream call that answers how many times it has been called."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> int:
        self.count += 1
        return self.count


def _timers() -> int:
    """Live timers on the running loop (asyncio keeps them, cancelled ones too until they
    come due, in loop._scheduled)."""
    scheduled: list[asyncio.TimerHandle] = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    return sum(not handle.cancelled() for handle in scheduled)


async def test_many_finished_flights_share_one_sweep_timer() -> None:
    async def call() -> int:
        return 1

    flights: SingleFlight[int] = SingleFlight(reuse_for=30.0)
    before = _timers()
    for key in range(200):
        await flights.run(key, call, lookup_started=asyncio.get_running_loop().time())
    assert _timers() - before <= 1
    assert flights.remembered == 200
    await flights.aclose()
    assert flights.remembered == 0 and _timers() == before


async def test_the_sweep_forgets_every_expired_result() -> None:
    async def call() -> int:
        return 1

    flights: SingleFlight[int] = SingleFlight(reuse_for=0.02)
    for key in range(20):
        await flights.run(key, call)
    assert flights.remembered == 20
    for _ in range(20):  # the sweep re-arms until nothing is left
        await asyncio.sleep(0.02)
        if flights.remembered == 0:
            break
    assert flights.remembered == 0


async def test_a_result_past_reuse_for_is_not_reused_before_the_sweep_runs() -> None:
    call = Calls()
    flights: SingleFlight[int] = SingleFlight(reuse_for=0.02)
    started = asyncio.get_running_loop().time()
    await flights.run("k", call, lookup_started=started)
    time.sleep(0.03)  # noqa: ASYNC251 - blocks the loop on purpose: the sweep cannot run
    assert flights.remembered == 1
    late = await flights.run("k", call, lookup_started=started)
    assert (late.value, late.shared, call.count) == (2, False, 2)


async def test_a_key_finished_again_is_remembered_with_its_newest_result() -> None:
    call = Calls()
    flights: SingleFlight[int] = SingleFlight(reuse_for=5.0)
    loop = asyncio.get_running_loop()
    await flights.run("a", call)
    await flights.run("b", call)
    second = loop.time()
    await flights.run("a", call, lookup_started=second)  # after the first finish: a new call
    reused = await flights.run("a", call, lookup_started=second)
    assert (reused.value, reused.shared, call.count, flights.remembered) == (3, True, 3, 2)


def test_a_single_flight_outliving_its_loop_sweeps_on_the_next_one() -> None:
    """Each test (and each Granian worker) has its own loop; results remembered on one loop
    that closed are swept by a timer on the loop in use now."""

    async def call() -> int:
        return 1

    flights: SingleFlight[int] = SingleFlight(reuse_for=0.02)

    async def run_and_wait(key: str, wait: float) -> int:
        await flights.run(key, call)
        await asyncio.sleep(wait)
        return flights.remembered

    assert asyncio.run(run_and_wait("a", 0.0)) == 1  # its loop closed before the sweep
    assert asyncio.run(run_and_wait("b", 0.2)) == 0  # the new loop's sweep forgot both
