"""The total time budget of one logical upstream request (all attempts and waits).

A client waiting on the façade gains nothing from a retry that lands after it gave up, so
every wait (backoff, rate-limit slot, concurrency slot, the attempt itself) is measured
against one deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.nhs.clock import Clock


@dataclass(frozen=True)
class Deadline:
    clock: Clock
    expires_at: float

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> Deadline:
        return cls(clock, clock.now() + seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - self.clock.now())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0
