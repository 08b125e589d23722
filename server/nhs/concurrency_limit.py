"""At most N requests in flight to one NHS API: a semaphore whose wait is bounded by the
request budget, so a burst of callers queues briefly and then gets an honest 503
instead of piling connections onto NHS."""

from __future__ import annotations

import asyncio
from types import TracebackType

from server.nhs.deadline import Deadline
from server.nhs.refusals import NoSlot


class ConcurrencyLimit:
    def __init__(self, api: str, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.api = api
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)
        self.in_flight = 0

    def slot(self, deadline: Deadline) -> Slot:
        """Hold one of the N slots for the block, or raise NoSlot if none frees in time."""
        return Slot(self, deadline)

    async def _acquire(self, deadline: Deadline) -> None:
        if not self._semaphore.locked():
            # A free slot is taken without waiting (Semaphore.acquire does not suspend), so
            # no budget timer is needed: every NHS call saves setting and cancelling one.
            await self._semaphore.acquire()
        else:
            try:
                async with asyncio.timeout(deadline.remaining()):
                    await self._semaphore.acquire()
            except TimeoutError:
                raise NoSlot(self.api, f"all {self.limit} upstream slots busy", retry_after=1.0) from None
        self.in_flight += 1

    def _release(self) -> None:
        self.in_flight -= 1
        self._semaphore.release()


class Slot:
    """`async with limit.slot(deadline)`: a plain context manager object, cheaper per call
    than a generator-based one."""

    __slots__ = ("_deadline", "_limit")

    def __init__(self, limit: ConcurrencyLimit, deadline: Deadline) -> None:
        self._limit = limit
        self._deadline = deadline

    async def __aenter__(self) -> None:
        await self._limit._acquire(self._deadline)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._limit._release()
