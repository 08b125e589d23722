"""At most N requests in flight to one NHS API: a semaphore whose wait is bounded by the
request budget, so a burst of callers queues briefly and then gets an honest 503
instead of piling connections onto NHS."""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from server.nhs.deadline import Deadline
from server.nhs.refusals import NoSlot


class ConcurrencyLimit:
    def __init__(self, api: str, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.api = api
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)

    @property
    def in_flight(self) -> int:
        return self.limit - self._semaphore._value

    @contextlib.asynccontextmanager
    async def slot(self, deadline: Deadline) -> AsyncIterator[None]:
        """Hold one of the N slots for the block, or raise NoSlot if none frees in time."""
        try:
            async with asyncio.timeout(deadline.remaining()):
                await self._semaphore.acquire()
        except TimeoutError:
            raise NoSlot(self.api, f"all {self.limit} upstream slots busy", retry_after=1.0) from None
        try:
            yield
        finally:
            self._semaphore.release()
