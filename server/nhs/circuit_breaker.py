"""A circuit breaker per NHS API: fail fast while it is down, probe once when it may be back.

Closed: calls pass; consecutive health failures (5xx, timeouts, resets; never 4xx) are
counted. At the threshold the circuit opens: every call fails at once with CircuitOpen
(Retry-After = time until the probe) and NHS sees no load from us. After the open
period one call is let through as a probe (half-open): success closes the circuit, a
failure reopens it for another full period.
"""

from __future__ import annotations

import enum
import logging

from server.nhs.clock import Clock
from server.nhs.refusals import CircuitOpen

log = logging.getLogger("facade.upstream")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """State machine for one API. Call admit() before an attempt, then exactly one of
    succeeded(), failed() or abandoned() with the value admit() returned."""

    def __init__(self, api: str, threshold: int, open_seconds: float, clock: Clock) -> None:
        self.api = api
        self.threshold = threshold
        self.open_seconds = open_seconds
        self.clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock.now() - self._opened_at >= self.open_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def seconds_until_probe(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.open_seconds - self.clock.now())

    def admit(self) -> bool:
        """Let a call through or raise CircuitOpen. Returns True when the call is the probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            log.info("circuit %s half-open: probing", self.api)
            return True
        wait = self.seconds_until_probe() if state is BreakerState.OPEN else 1.0
        raise CircuitOpen(self.api, "circuit open after repeated failures", retry_after=wait)

    def succeeded(self, probe: bool) -> None:
        if probe or self._opened_at is not None:
            log.info("circuit %s closed", self.api)
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._open()
            return
        if self._opened_at is not None:
            return  # a call admitted before the circuit opened; the open period stands
        self._failures += 1
        if self._failures >= self.threshold:
            self._open()

    def abandoned(self, probe: bool) -> None:
        """The attempt ended without telling us about the API's health (e.g. cancelled)."""
        if probe:
            self._probing = False

    def _open(self) -> None:
        self._opened_at = self.clock.now()
        self._failures = 0
        log.warning("circuit %s open for %.1fs", self.api, self.open_seconds)
