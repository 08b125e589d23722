"""Single-flight: one call per key while it runs; same result or same exception for all."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from server.nhs.single_flight import SingleFlight


async def test_concurrent_identical_calls_share_one() -> None:
    calls = 0
    release = asyncio.Event()

    async def call() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"n": calls}

    flights: SingleFlight[dict[str, int]] = SingleFlight()
    tasks = [asyncio.create_task(flights.run("k", call)) for _ in range(20)]
    await asyncio.sleep(0)
    assert flights.in_flight == 1
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert all(r.value == {"n": 1} and r.shared for r in results)
    assert flights.in_flight == 0


async def test_a_lone_call_is_not_marked_shared() -> None:
    async def call() -> int:
        return 7

    result = await SingleFlight[int]().run("k", call)
    assert (result.value, result.shared) == (7, False)


async def test_different_keys_do_not_share() -> None:
    calls: list[str] = []

    def call_for(key: str) -> Callable[[], Awaitable[str]]:
        async def call() -> str:
            calls.append(key)
            await asyncio.sleep(0.01)
            return key

        return call

    flights: SingleFlight[str] = SingleFlight()
    results = await asyncio.gather(*(flights.run(k, call_for(k)) for k in ("a", "b", "a")))
    assert [r.value for r in results] == ["a", "b", "a"]
    assert sorted(calls) == ["a", "b"]


async def test_followers_get_the_same_exception() -> None:
    release = asyncio.Event()

    async def call() -> int:
        await release.wait()
        raise LookupError("upstream said no")

    flights: SingleFlight[int] = SingleFlight()
    tasks = [asyncio.create_task(flights.run("k", call)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, LookupError) for o in outcomes)
    assert outcomes[0] is outcomes[1] is outcomes[2]


async def test_leader_cancelled_does_not_fail_followers() -> None:
    release = asyncio.Event()

    async def call() -> str:
        await release.wait()
        return "ok"

    flights: SingleFlight[str] = SingleFlight()
    leader = asyncio.create_task(flights.run("k", call))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flights.run("k", call))
    await asyncio.sleep(0)
    leader.cancel()
    release.set()
    assert (await follower).value == "ok"
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_a_call_after_completion_starts_fresh() -> None:
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        return calls

    flights: SingleFlight[int] = SingleFlight()
    assert (await flights.run("k", call)).value == 1
    assert (await flights.run("k", call)).value == 2


async def test_a_lookup_that_began_before_the_flight_finished_reuses_its_result() -> None:
    # The cache's race: a caller whose store lookup started while a flight was writing
    # may miss, then find no running flight; it must not make a second upstream call.
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    flights: SingleFlight[int] = SingleFlight(reuse_for=5.0)
    loop = asyncio.get_running_loop()
    started_during = loop.time()
    first = await flights.run("k", call, lookup_started=loop.time())
    late = await flights.run("k", call, lookup_started=started_during)
    assert (first.value, late.value, late.shared, calls) == (1, 1, True, 1)
    fresh = await flights.run("k", call, lookup_started=loop.time())
    assert (fresh.value, calls) == (2, 2)  # a lookup that began after the finish starts a new call


async def test_finished_results_are_not_reused_without_reuse_for_or_lookup_started() -> None:
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        return calls

    loop = asyncio.get_running_loop()
    plain: SingleFlight[int] = SingleFlight()
    started = loop.time()
    await plain.run("k", call)
    assert (await plain.run("k", call, lookup_started=started)).value == 2
    reusing: SingleFlight[int] = SingleFlight(reuse_for=5.0)
    await reusing.run("k", call)
    assert (await reusing.run("k", call)).value == 4


async def test_failures_are_not_reused() -> None:
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        raise LookupError("upstream said no")

    flights: SingleFlight[int] = SingleFlight(reuse_for=5.0)
    started = asyncio.get_running_loop().time()
    for _ in range(2):
        with pytest.raises(LookupError):
            await flights.run("k", call, lookup_started=started)
    assert calls == 2


async def test_a_reused_result_is_forgotten_after_reuse_for() -> None:
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        return calls

    flights: SingleFlight[int] = SingleFlight(reuse_for=0.02)
    started = asyncio.get_running_loop().time()
    await flights.run("k", call, lookup_started=started)
    await asyncio.sleep(0.05)
    assert (await flights.run("k", call, lookup_started=started)).value == 2


async def test_aclose_cancels_and_awaits_a_running_leader() -> None:
    """At shutdown a shielded leader must not outlive the session it uses."""
    flights: SingleFlight[int] = SingleFlight()
    started = asyncio.Event()
    finished: list[str] = []

    async def slow() -> int:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            finished.append("cancelled")
            raise
        return 1

    caller = asyncio.ensure_future(flights.run("k", slow))
    await started.wait()
    await flights.aclose()
    assert finished == ["cancelled"] and flights.in_flight == 0
    with pytest.raises(asyncio.CancelledError):
        await caller
