"""Which upstream failures are retried, and how long to wait first. Pure functions.

Retried: 429, 502, 503, 504, timeouts and dropped connections; these are transient by
the NHS API specs (PDS answers a Spine timeout with 503 and Retry-After: 5 and asks for
a re-send with the same X-Request-ID). Never retried: other 4xx (the request itself is
wrong), 500/501, unreadable bodies, and refusals by our own guards.

Only idempotent methods are retried, plus POSTs the caller marks safe (GP Connect's
$gpc.getstructuredrecord is a read-only POST). Waits use exponential backoff with full
jitter (uniform between 0 and min(max, base * 2**n)), which spreads many clients'
retries instead of synchronising them; a Retry-After from NHS is honoured as given,
and a wait that would not leave time in the request budget is not started at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from server.nhs.errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from server.nhs.refusals import LocalRefusal

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_backoff: float = 0.2
    max_backoff: float = 2.0


def may_retry_method(method: str, retry_safe: bool = False) -> bool:
    """GET and HEAD always; anything else only when the caller vouches it is safe to repeat."""
    return method.upper() in IDEMPOTENT_METHODS or retry_safe


def is_retryable(err: UpstreamError) -> bool:
    """True for failures that a later identical request may not meet."""
    if isinstance(err, LocalRefusal):
        return False
    if isinstance(err, UpstreamTimeout):
        return True
    if isinstance(err, UpstreamRateLimited):
        return err.status == 429
    if isinstance(err, UpstreamUnavailable):
        return err.status is None or err.status in TRANSIENT_STATUSES  # None: connection refused/reset
    return False


def is_health_failure(err: UpstreamError) -> bool:
    """Failures that say the API is unwell (5xx, timeouts, resets), for the circuit breaker.
    A 4xx, including 429, proves the API is up and answering."""
    if isinstance(err, LocalRefusal):
        return False
    return isinstance(err, (UpstreamTimeout, UpstreamUnavailable))


def backoff(attempt: int, policy: RetryPolicy, random: Callable[[], float]) -> float:
    """Full-jitter backoff before retry number `attempt` (1 = the first retry)."""
    ceiling = min(policy.max_backoff, policy.base_backoff * (2 ** (attempt - 1)))
    return float(ceiling * random())


def retry_delay(
    err: UpstreamError, attempts_made: int, policy: RetryPolicy, remaining: float, random: Callable[[], float]
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up now.

    Gives up when the failure is not transient, the attempts are used up, or the wait
    (Retry-After if NHS sent one, else backoff) would leave no time in the budget.
    """
    if not is_retryable(err) or attempts_made >= policy.max_attempts:
        return None
    delay = err.retry_after if err.retry_after is not None else backoff(attempts_made, policy, random)
    if delay >= remaining:
        return None
    return delay
