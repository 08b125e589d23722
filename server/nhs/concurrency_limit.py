"""At most N requests in flight to one NHS API: a semaphore whose wait is bounded by the
request budget, so a burst of callers queues briefly and then gets an honest 503
instead of piling connections onto NHS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

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

    @contextlib.asynccontextmanager
    async def slot(self, deadline: Deadline) -> AsyncIterator[None]:
        """Hold one of the N slots for the block, or raise NoSlot if none frees in time."""
        try:
            async with asyncio.timeout(deadline.remaining()):
                await self._semaphore.acquire()
        except TimeoutError:
            raise NoSlot(self.api, f"all {self.limit} upstream slots busy", retry_after=1.0) from None
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._semaphore.release()
