"""Client-side rate limit per NHS API: a token bucket that spaces our requests.

NHS APIs enforce per-app limits (PDS: 5 requests/s per app) with Apigee spike arrest,
which smooths the limit over the second, so the default burst is one request: at 5/s
requests leave at least 200 ms apart. A caller that would have to wait past its
request budget is refused at once (NoSlot -> 503 with Retry-After) rather than sent
late or queued forever.

This bucket is one process's; with MongoDB configured the composition root hands the
resilience layer server.nhs.shared_rate_limiter's bucket instead (one budget for the
whole deployment), behind the same `RateLimit` protocol.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from server.nhs.clock import Clock
from server.nhs.deadline import Deadline
from server.nhs.refusals import NoSlot


class RateLimit(Protocol):
    """What the resilience layer asks of a client-side rate limit."""

    api: str
    rate: float  # requests per second

    async def acquire(self, deadline: Deadline) -> None:
        """Wait for our turn, or raise NoSlot when it comes after the deadline."""


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up. Waiters reserve a token up
    front (the balance may go negative), so concurrent callers queue in order."""

    def __init__(self, api: str, rate: float, clock: Clock, burst: float = 1.0) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.api = api
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._updated = clock.now()
        self._reservations = 0  # how many tokens were ever taken: tells a waiter whether it is last in line

    def reserve(self, max_wait: float) -> float | None:
        """Take a token if one is free within max_wait seconds; return the wait, or None
        (nothing taken) when it would take longer."""
        self._refill()
        wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
        if wait > max_wait:
            return None
        self._tokens -= 1
        self._reservations += 1
        return wait

    def next_free_in(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    async def acquire(self, deadline: Deadline) -> None:
        """Wait for our turn, or raise NoSlot when it comes after the deadline."""
        wait = self.reserve(deadline.remaining())
        if wait is None:
            raise NoSlot(
                self.api,
                f"client-side rate limit ({self.rate:g}/s) has no slot in time",
                retry_after=self.next_free_in(),
            )
        if wait > 0:
            ours = self._reservations
            try:
                await self.clock.sleep(wait)
            except asyncio.CancelledError:
                self._give_back(ours)
                raise

    def _give_back(self, reservation: int) -> None:
        """Return a cancelled waiter's token, but only when nobody queued behind it.

        A bucket has no holes: returning a token from the middle of the queue would let
        the next newcomer leave at the same instant as the waiter after us (two requests
        at once, which spike arrest counts against us), so that slot is simply lost. The
        last waiter in line can undo its reservation exactly.
        """
        if reservation == self._reservations:
            self._refill()
            self._tokens = min(self.burst, self._tokens + 1)
            self._reservations -= 1

    def _refill(self) -> None:
        now = self.clock.now()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
