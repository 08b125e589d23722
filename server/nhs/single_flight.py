"""Single-flight: concurrent identical calls share one call.

Used twice: the resilience layer (fifty clients asking for the same Patient at once,
NHS sees one request) and the read-through cache (N concurrent identical misses, one
upstream call and one write). The first caller (the leader) starts the call as its own
task; callers with the same key that arrive while it runs await that task and get the
same result or the same exception. The task is shielded, so a leader whose client
disconnects does not fail the others. The key is dropped before any caller resumes, so
a late caller starts a fresh call instead of joining a finished one.
Keys must include the caller's identity: a response is never shared across tokens.

One race needs more than a table of running flights (the cache's): a caller whose
cache lookup started before a flight finished writing may see a miss after the flight
is gone. So a SingleFlight built with `reuse_for` keeps a finished flight's result that
long, and a caller passing `lookup_started` (loop time) earlier than the finish takes
that result instead of starting a second call. Finished results are kept in finish
order and forgotten by one sweep timer per SingleFlight, not one timer per flight: at
hundreds of misses a second, a timer each would fill the event loop's timer heap, and
every timer any request sets (aiohttp's read timeouts, budgets) would pay for its depth.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from server import metrics, request_trace

T = TypeVar("T")


@dataclass
class _Flight(Generic[T]):
    task: asyncio.Task[T]
    waiters: int = 1


@dataclass(frozen=True)
class Shared(Generic[T]):
    """The call's result and whether other callers received the same object."""

    value: T
    shared: bool


class SingleFlight(Generic[T]):
    def __init__(self, *, reuse_for: float = 0.0, name: str | None = None) -> None:
        """`reuse_for`: seconds a finished flight's result stays available to callers
        whose lookup began before it finished (0: not kept). `name`: the label its joins
        are counted under (facade_single_flight_joins_total; None: not counted)."""
        self.reuse_for = reuse_for
        self.name = name
        self._flights: dict[Hashable, _Flight[T]] = {}
        # Finished results by key, oldest finish first (loop time, result).
        self._recent: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    @property
    def remembered(self) -> int:
        """Finished results held for reuse (until the sweep forgets them)."""
        return len(self._recent)

    async def run(
        self, key: Hashable, call: Callable[[], Awaitable[T]], *, lookup_started: float | None = None
    ) -> Shared[T]:
        """Join the running flight for `key`, reuse one that finished after `lookup_started`
        (loop time; only with `reuse_for`), or start one."""
        flight = self._flights.get(key)
        if flight is None:
            recent = self._recent.get(key)
            if recent is not None and lookup_started is not None and self._reusable(recent[0], lookup_started):
                self._joined()
                return Shared(recent[1], True)
            flight = _Flight(asyncio.ensure_future(call()))
            self._flights[key] = flight
            # Registered before any waiter's callback, so the key is gone (and a result
            # recorded) before anyone resumes.
            flight.task.add_done_callback(partial(self._finished, key))
        else:
            flight.waiters += 1
            self._joined()
        value = await asyncio.shield(flight.task)
        return Shared(value, flight.waiters > 1)

    async def aclose(self) -> None:
        """Cancel and await the flights still running: at shutdown a shielded leader must
        not outlive the HTTP session it uses."""
        tasks = [flight.task for flight in self._flights.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flights.clear()
        self._recent.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _joined(self) -> None:
        if self.name is not None:
            metrics.single_flight_join(self.name)
        request_trace.single_flight_join(self.name or "shared")

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        current = self._flights.get(key)
        if current is not None and current.task is task:
            del self._flights[key]
        if task.cancelled():
            return
        if task.exception() is None and self.reuse_for > 0:  # retrieved: no "never retrieved" warning
            loop = task.get_loop()
            self._recent[key] = (loop.time(), task.result())
            self._recent.move_to_end(key)  # the newest finish last: the sweep stops at the first fresh one
            if self._sweep is None or self._sweep_loop is not loop:  # none yet, or on a loop since closed
                self._sweep_loop = loop
                self._sweep = loop.call_later(self.reuse_for, self._forget_expired, loop)

    def _reusable(self, finished: float, lookup_started: float) -> bool:
        """A finished result serves a lookup that began before the finish, within reuse_for
        (checked here too: the sweep may run late)."""
        return finished >= lookup_started and asyncio.get_running_loop().time() - finished < self.reuse_for

    def _forget_expired(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop results older than reuse_for; re-arm for the oldest one left, but no sooner
        than a quarter of reuse_for from now, so a steady stream of flights is swept in
        batches (a result held a little longer is never reused: _reusable checks its age)."""
        if loop is not self._sweep_loop:
            return  # a sweep left on a former loop: the current loop's sweep owns the results
        self._sweep = None
        now = loop.time()
        while self._recent:
            key, (finished, _) = next(iter(self._recent.items()))
            if now - finished < self.reuse_for:
                due = max(finished + self.reuse_for, now + self.reuse_for / 4)
                self._sweep = loop.call_at(due, self._forget_expired, loop)
                return
            del self._recent[key]
