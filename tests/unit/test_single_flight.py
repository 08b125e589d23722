"""Single-flight: one call per key while it runs; same result or same exception for all."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

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
