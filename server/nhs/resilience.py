"""One logical upstream request, made safe for NHS: budget, retries, breaker, limits.

For each attempt: the circuit breaker admits it (or we fail fast), a concurrency slot
and a rate-limit token are taken (waiting no longer than the budget allows), and the
attempt is sent with the SAME X-Request-ID as every other attempt of this logical
request, so NHS can de-duplicate a re-send. Failures are retried per retry_policy.
One Resilience object exists per NHS API per app, shared by every client of that API.

An optional `charge` (the caller's NHS quota, see server.nhs.client) is called before
each attempt: for the first one before anything else, by the caller that starts the
request (a single-flight leader, never a joiner), so a refusal is that caller's alone;
for each retry just before it is sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from server import metrics, request_trace
from server.nhs.circuit_breaker import BreakerState, CircuitBreaker
from server.nhs.client import UpstreamResponse
from server.nhs.clock import Clock, MonotonicClock
from server.nhs.concurrency_limit import ConcurrencyLimit
from server.nhs.deadline import Deadline
from server.nhs.errors import UpstreamError, UpstreamTimeout
from server.nhs.rate_limiter import RateLimit, TokenBucket
from server.nhs.refusals import CircuitOpen, NoSlot
from server.nhs.retry_policy import RetryPolicy, is_health_failure, may_retry_method, retry_delay
from server.nhs.single_flight import Shared, SingleFlight
from server.random_ids import random_uuid

log = logging.getLogger("facade.upstream")

Attempt = Callable[[str], Awaitable[UpstreamResponse]]  # takes the X-Request-ID


@dataclass(frozen=True)
class ResilienceConfig:
    """How hard the façade tries one NHS API. The NHS layer takes this, never the façade's
    settings: server.sources.wiring builds it from the FACADE_UPSTREAM_* settings."""

    retry: RetryPolicy
    budget: float  # seconds for one logical request, every retry and wait included
    breaker_threshold: int  # consecutive health failures that open the circuit
    breaker_open_seconds: float
    concurrency: int  # requests in flight per NHS API
    single_flight: bool  # concurrent identical GETs share one call


class Charge(Protocol):
    """Called before each attempt; may raise to refuse a first attempt (never a retry)."""

    def __call__(self, *, retry: bool) -> None: ...


@dataclass
class Resilience:
    """The guards of one NHS API."""

    api: str
    policy: RetryPolicy
    budget: float
    breaker: CircuitBreaker
    concurrency: ConcurrencyLimit
    rate_limit: RateLimit | None  # this process's TokenBucket, or one shared through MongoDB
    flights: SingleFlight[UpstreamResponse] | None
    clock: Clock = field(default_factory=MonotonicClock)
    random: Callable[[], float] = random.random

    async def call(
        self,
        method: str,
        attempt: Attempt,
        *,
        retry_safe: bool = False,
        flight_key: Hashable | None = None,
        charge: Charge | None = None,
    ) -> Shared[UpstreamResponse]:
        """Run the logical request; with a flight_key, identical concurrent calls share it
        (and only the caller that starts it is charged)."""

        def start() -> Awaitable[UpstreamResponse]:
            if charge is not None:
                # Synchronously, in the starting caller: a refusal raises here, before any
                # flight exists that others could join.
                charge(retry=False)
            return self.logical_request(method, attempt, retry_safe=retry_safe, charge=charge)

        if flight_key is None or self.flights is None:
            return Shared(await start(), False)
        return await self.flights.run(flight_key, start)

    async def logical_request(
        self, method: str, attempt: Attempt, *, retry_safe: bool = False, charge: Charge | None = None
    ) -> UpstreamResponse:
        """Every attempt of one request; `charge` is called before each retry (the first
        attempt is charged by `call`)."""
        deadline = Deadline.after(self.clock, self.budget)
        request_id = random_uuid()
        retries_allowed = may_retry_method(method, retry_safe)
        attempts = 0
        while True:
            attempts += 1
            if attempts > 1 and charge is not None:
                charge(retry=True)
            numbered = request_trace.begin_attempt(attempts)
            try:
                return await self._attempt(attempt, request_id, deadline)
            except UpstreamError as err:
                delay = (
                    retry_delay(err, attempts, self.policy, deadline.remaining(), self.random)
                    if retries_allowed
                    else None
                )
                if delay is None:
                    raise
                metrics.nhs_retry(self.api)
                request_trace.retry(self.api, attempts + 1, delay, err.message)
                log.info(
                    "upstream %s retry %d in %.2fs after %s request_id=%s",
                    self.api,
                    attempts + 1,
                    delay,
                    err.message,
                    request_id,
                )
                await self.clock.sleep(delay)
            finally:
                request_trace.end_attempt(numbered)

    async def _attempt(self, attempt: Attempt, request_id: str, deadline: Deadline) -> UpstreamResponse:
        try:
            probe = self.breaker.admit()
        except CircuitOpen as refused:
            metrics.nhs_call(self.api, "circuit_open", sent=False)
            request_trace.circuit(self.api, "open", refused.message)
            raise
        outcome: UpstreamError | None = None
        answered = False
        try:
            async with self.concurrency.slot(deadline):
                if self.rate_limit is not None:
                    waited_from = self.clock.now()
                    await self.rate_limit.acquire(deadline)
                    metrics.rate_limit_wait(self.api, self.clock.now() - waited_from)
                    request_trace.rate_limit_wait(self.api, self.clock.now() - waited_from)
                remaining = deadline.remaining()
                if remaining <= 0:
                    metrics.nhs_call(self.api, "timeout", sent=False)
                    raise UpstreamTimeout(self.api, "request budget used up before the attempt")
                try:
                    async with asyncio.timeout(remaining):
                        response = await attempt(request_id)
                except TimeoutError:
                    # The attempt was cut off here, so the client did not count it (server.nhs.client).
                    metrics.nhs_call(self.api, "timeout")
                    raise UpstreamTimeout(self.api, "request budget used up") from None
                answered = True
                return response
        except UpstreamError as err:
            outcome = err
            if isinstance(err, NoSlot):  # a concurrency slot or rate-limit token not had in time
                metrics.nhs_call(self.api, "rate_limited", sent=False)
                request_trace.record("rate_limit", f"{self.api} refused: {err.message}", {"api": self.api})
            raise
        finally:
            if outcome is not None and is_health_failure(outcome):
                self.breaker.failed(probe)
                if request_trace.current() is not None and self.breaker.state is not BreakerState.CLOSED:
                    request_trace.circuit(self.api, self.breaker.state.name.lower(), "after this failure")
            elif answered or (outcome is not None and outcome.status is not None):
                self.breaker.succeeded(probe)  # NHS answered, even if with a 4xx
            else:
                self.breaker.abandoned(probe)


def resilience_for(
    api: str, config: ResilienceConfig, rate: float | None = None, clock: Clock | None = None
) -> Resilience:
    """The guards for `api` as `config` says; `rate` is its client-side requests/s
    (server.sources.config.SourceConfig.rate_limits), None = unlimited."""
    clock = clock or MonotonicClock()
    return Resilience(
        api=api,
        policy=config.retry,
        budget=config.budget,
        breaker=CircuitBreaker(api, config.breaker_threshold, config.breaker_open_seconds, clock),
        concurrency=ConcurrencyLimit(api, config.concurrency),
        rate_limit=TokenBucket(api, rate, clock) if rate else None,
        flights=SingleFlight(name=api) if config.single_flight else None,
        clock=clock,
    )
