"""Per-caller NHS quota: one caller cannot spend the hospital's NHS budget.

NHS rate limits are per application (PDS: 5 requests/s for the whole hospital), so one
script or runaway client could starve every clinician. Each caller, identified by token
issuer + subject + client id, gets a token bucket: `rate` NHS requests per second
sustained, `burst` at once. The NHS client charges it per upstream request actually sent
(server.nhs.client), so cache hits and single-flight joiners cost nothing, and callers
without a principal (the façade's own internal calls) are never charged.

- A request's first attempt needs a token: without one the caller gets 429 `throttled`
  with `Retry-After` (TooManyRequests), before any NHS call, concurrency slot or NHS
  rate-limit token is taken, so a throttled caller cannot hold up the others.
- A retry of a request already under way is debited even when the bucket is empty (the
  balance goes negative and is repaid before the caller's next request is admitted): the
  caller pays for every request sent, yet a request NHS has begun is never abandoned half
  way, and a flight other callers share never fails on one caller's quota.
- At most `max_callers` buckets are kept (least recently used evicted). An evicted caller
  comes back with a full bucket, which needs `max_callers` other callers in between.

Pure bookkeeping with an injectable clock; one CallerQuota per process, built by the app.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from server.access.principal import Principal
from server.fhir.errors import TooManyRequests
from server.nhs.clock import Clock, MonotonicClock

CallerKey = tuple[str, str, str]
DEFAULT_MAX_CALLERS = 10_000


def caller_key(principal: Principal) -> CallerKey:
    """Whose quota a request spends: the user (issuer + subject) through one client."""
    return (principal.issuer, principal.subject, principal.client_id or "")


@dataclass
class _Bucket:
    tokens: float
    updated: float


class CallerQuota:
    """A token bucket per caller: `rate` NHS requests/second, up to `burst` saved up."""

    def __init__(
        self, rate: float, burst: float, *, clock: Clock | None = None, max_callers: int = DEFAULT_MAX_CALLERS
    ) -> None:
        if rate <= 0 or burst < 1 or max_callers < 1:
            raise ValueError("rate must be positive, burst at least 1 and max_callers at least 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock or MonotonicClock()
        self.max_callers = max_callers
        self._buckets: OrderedDict[CallerKey, _Bucket] = OrderedDict()

    @property
    def tracked(self) -> int:
        return len(self._buckets)

    def available(self, principal: Principal) -> float:
        """Requests the caller may send now (negative while repaying retries)."""
        return self._bucket(caller_key(principal)).tokens

    def take(self, principal: Principal, api: str) -> None:
        """Charge one first attempt to `api`, or raise TooManyRequests (nothing charged)."""
        bucket = self._bucket(caller_key(principal))
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self.rate
            raise TooManyRequests(
                f"NHS request quota for this caller used up ({self.rate:g} requests/s, {self.burst:g} at once); "
                f"the {api} request was not sent: retry after {math.ceil(wait)} s",
                retry_after=wait,
            )
        bucket.tokens -= 1

    def debit(self, principal: Principal) -> None:
        """Charge one retry: always allowed, the balance may go below zero."""
        self._bucket(caller_key(principal)).tokens -= 1

    def _bucket(self, key: CallerKey) -> _Bucket:
        now = self.clock.now()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            while len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        return bucket
