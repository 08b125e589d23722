"""Retry policy: which failures are retried, full-jitter bounds, Retry-After vs budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.nhs.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from server.nhs.refusals import CircuitOpen, NoSlot
from server.nhs.retry_policy import (
    RetryPolicy,
    backoff,
    is_health_failure,
    is_retryable,
    may_retry_method,
    retry_delay,
)

POLICY = RetryPolicy(max_attempts=3, base_backoff=0.5, max_backoff=4.0)


@pytest.mark.parametrize(
    "err, retryable, health",
    [
        (UpstreamRateLimited("PDS", "HTTP 429", status=429), True, False),
        (UpstreamUnavailable("PDS", "HTTP 502", status=502), True, True),
        (UpstreamUnavailable("PDS", "HTTP 503", status=503), True, True),
        (UpstreamTimeout("PDS", "HTTP 504", status=504), True, True),
        (UpstreamTimeout("PDS", "timed out"), True, True),
        (UpstreamUnavailable("PDS", "connection failed (ServerDisconnectedError)"), True, True),
        (UpstreamUnavailable("PDS", "HTTP 500", status=500), False, True),
        (UpstreamUnavailable("PDS", "HTTP 501", status=501), False, True),
        (UpstreamRejected("PDS", "HTTP 400", status=400), False, False),
        (UpstreamRejected("PDS", "HTTP 404", status=404), False, False),
        (UpstreamRejected("PDS", "HTTP 401", status=401), False, False),
        (UpstreamBadResponse("PDS", "HTTP 200 body is not JSON"), False, False),
        (CircuitOpen("PDS", "open", retry_after=3), False, False),
        (NoSlot("PDS", "no slot", retry_after=1), False, False),
    ],
)
def test_classification(err: UpstreamError, retryable: bool, health: bool) -> None:
    assert is_retryable(err) is retryable
    assert is_health_failure(err) is health


@pytest.mark.parametrize(
    "method, safe, allowed",
    [
        ("GET", False, True),
        ("get", False, True),
        ("HEAD", False, True),
        ("POST", False, False),
        ("POST", True, True),
        ("PUT", False, False),
        ("PATCH", False, False),
    ],
)
def test_only_idempotent_or_marked_methods_retry(method: str, safe: bool, allowed: bool) -> None:
    assert may_retry_method(method, safe) is allowed


@settings(max_examples=200)
@given(attempt=st.integers(1, 30), r=st.floats(0, 1, exclude_max=True))
def test_full_jitter_stays_within_exponential_ceiling(attempt: int, r: float) -> None:
    delay = backoff(attempt, POLICY, lambda: r)
    ceiling = min(POLICY.max_backoff, POLICY.base_backoff * 2 ** (attempt - 1))
    assert 0 <= delay <= ceiling
    assert delay == pytest.approx(ceiling * r)


def test_backoff_ceiling_doubles_then_caps() -> None:
    top = [backoff(n, POLICY, lambda: 1.0) for n in range(1, 7)]
    assert top == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_retry_after_is_honoured_over_backoff() -> None:
    err = UpstreamUnavailable("PDS", "HTTP 503", status=503, retry_after=5.0)
    assert retry_delay(err, 1, POLICY, remaining=10.0, random=lambda: 0.0) == 5.0


def test_retry_after_beyond_budget_gives_up_now() -> None:
    err = UpstreamUnavailable("PDS", "HTTP 503", status=503, retry_after=5.0)
    assert retry_delay(err, 1, POLICY, remaining=4.9, random=lambda: 0.0) is None


def test_429_without_retry_after_backs_off() -> None:
    # PDS sends no Retry-After on 429 (nhs-apis.md 1.9).
    err = UpstreamRateLimited("PDS", "HTTP 429", status=429)
    assert retry_delay(err, 2, POLICY, remaining=10.0, random=lambda: 0.5) == pytest.approx(0.5)


def test_attempts_exhausted() -> None:
    err = UpstreamUnavailable("PDS", "HTTP 503", status=503)
    assert retry_delay(err, 2, POLICY, remaining=10.0, random=lambda: 0.5) is not None
    assert retry_delay(err, 3, POLICY, remaining=10.0, random=lambda: 0.5) is None


def test_non_retryable_never_waits() -> None:
    err = UpstreamRejected("PDS", "HTTP 400", status=400)
    assert retry_delay(err, 1, POLICY, remaining=10.0, random=lambda: 0.5) is None
