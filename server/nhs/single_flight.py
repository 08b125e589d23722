"""Single-flight: concurrent identical upstream reads share one call.

When fifty clients ask for the same Patient at once, NHS sees one request. The first
caller (the leader) starts the call as its own task; callers with the same key that
arrive while it runs await that task and get the same result or the same exception.
The task is shielded, so a leader whose client disconnects does not fail the others.
Keys must include the caller's identity: a response is never shared across tokens.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


@dataclass
class _Flight(Generic[T]):
    task: "asyncio.Task[T]"
    waiters: int = 1


@dataclass(frozen=True)
class Shared(Generic[T]):
    """The call's result and whether other callers received the same object."""

    value: T
    shared: bool


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[T]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> Shared[T]:
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(call()))
            self._flights[key] = flight
            # Registered before any waiter's callback, so the key is gone before anyone
            # resumes: a late caller starts a fresh call instead of joining a finished one.
            flight.task.add_done_callback(lambda task, key=key: self._finished(key, task))
        else:
            flight.waiters += 1
        value = await asyncio.shield(flight.task)
        return Shared(value, flight.waiters > 1)

    def _finished(self, key: Hashable, task: "asyncio.Task[T]") -> None:
        current = self._flights.get(key)
        if current is not None and current.task is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning if every waiter left
