"""Single-flight for cache misses: N concurrent identical misses, one upstream call.

The first caller for a key starts the work as its own task; later callers for the
same key await that task. The task is shielded, so a caller that goes away (client
disconnect) does not cancel the work the others wait for.

One race needs more than a table of running flights: a caller whose cache lookup
started before a flight finished writing may see a miss after the flight is gone. So a
finished flight's result is kept for a moment, and a caller whose lookup began before
it finished takes that result instead of starting a second upstream call.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

T = TypeVar("T")
RECENT_SECONDS = 2.0


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[T]] = {}
        self._recent: dict[Hashable, tuple[float, T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]], *, lookup_started: float) -> T:
        """Join the running flight for `key`, reuse one that finished after `lookup_started`
        (loop time), or start one."""
        loop = asyncio.get_running_loop()
        task = self._running.get(key)
        if task is None:
            recent = self._recent.get(key)
            if recent is not None and recent[0] >= lookup_started:
                return recent[1]
            task = loop.create_task(self._fly(key, work))
            task.add_done_callback(_retrieve)  # every caller may have gone: no "never retrieved" noise
            self._running[key] = task
        return await asyncio.shield(task)

    async def _fly(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        try:
            result = await work()
        finally:
            self._running.pop(key, None)
        finished = loop.time()
        self._recent[key] = (finished, result)
        loop.call_later(RECENT_SECONDS, self._forget, key, finished)
        return result

    def _forget(self, key: Hashable, finished: float) -> None:
        entry = self._recent.get(key)
        if entry is not None and entry[0] == finished:
            del self._recent[key]


def _retrieve(task: asyncio.Task[T]) -> None:
    if not task.cancelled():
        task.exception()
