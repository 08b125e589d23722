"""The logical-request loop with scripted attempts and a fake clock (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from server.nhs.circuit_breaker import BreakerState, CircuitBreaker
from server.nhs.client import UpstreamResponse
from server.nhs.concurrency_limit import ConcurrencyLimit
from server.nhs.errors import UpstreamError, UpstreamRateLimited, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from server.nhs.rate_limiter import TokenBucket
from server.nhs.refusals import CircuitOpen, NoSlot
from server.nhs.resilience import Resilience, resilience_for
from server.nhs.resilient_client import flight_key
from server.nhs.retry_policy import RetryPolicy
from server.nhs.single_flight import SingleFlight
from server.providers.base import RequestContext
from server.settings import Settings
from server.sources.config import SourceConfig
from server.sources.registry import SOURCES
from server.sources.wiring import resilience_config
from tests.support.fake_clock import FakeClock

OK = UpstreamResponse(200, {}, {"resourceType": "Patient", "id": "9000000009"}, "")


def make(
    clock: FakeClock, *, attempts: int = 3, budget: float = 10.0, threshold: int = 5, rate: float | None = None
) -> Resilience:
    return Resilience(
        api="PDS",
        policy=RetryPolicy(attempts, 0.5, 4.0),
        budget=budget,
        breaker=CircuitBreaker("PDS", threshold, 30.0, clock),
        concurrency=ConcurrencyLimit("PDS", 4),
        rate_limit=TokenBucket("PDS", rate, clock) if rate else None,
        flights=SingleFlight(),
        clock=clock,
        random=lambda: 0.5,
    )


class Script:
    """Answers attempts from a list of outcomes and records the X-Request-IDs used."""

    def __init__(self, outcomes: Sequence[UpstreamError | UpstreamResponse]) -> None:
        self.outcomes = list(outcomes)
        self.request_ids: list[str] = []

    async def __call__(self, request_id: str) -> UpstreamResponse:
        self.request_ids.append(request_id)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, UpstreamError):
            raise outcome
        return outcome


def e503(retry_after: float | None = None) -> UpstreamUnavailable:
    return UpstreamUnavailable("PDS", "HTTP 503", status=503, retry_after=retry_after)


async def test_retry_reuses_one_request_id_and_backs_off() -> None:
    clock = FakeClock()
    script = Script([e503(), UpstreamTimeout("PDS", "timed out"), OK])
    assert await make(clock).logical_request("GET", script) is OK
    assert len(script.request_ids) == 3 and len(set(script.request_ids)) == 1
    assert clock.sleeps == pytest.approx([0.25, 0.5])  # full jitter at random()=0.5: 0.5*0.5, 1.0*0.5


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    script = Script([e503(), e503(), e503(), OK])
    with pytest.raises(UpstreamUnavailable) as info:
        await make(FakeClock()).logical_request("GET", script)
    assert info.value.status == 503
    assert len(script.request_ids) == 3


async def test_retry_after_honoured() -> None:
    clock = FakeClock()
    script = Script([UpstreamRateLimited("PDS", "HTTP 429", status=429, retry_after=2.0), OK])
    await make(clock).logical_request("GET", script)
    assert clock.sleeps == [2.0]


async def test_retry_after_beyond_budget_surfaces_at_once() -> None:
    clock = FakeClock()
    script = Script([e503(retry_after=30.0), OK])
    with pytest.raises(UpstreamUnavailable) as info:
        await make(clock, budget=10.0).logical_request("GET", script)
    assert info.value.retry_after == 30.0
    assert clock.sleeps == [] and len(script.request_ids) == 1


@pytest.mark.parametrize("status", [400, 404, 401, 403])
async def test_4xx_never_retried_and_not_a_breaker_failure(status: int) -> None:
    res = make(FakeClock(), threshold=1)
    script = Script([UpstreamRejected("PDS", f"HTTP {status}", status=status), OK])
    with pytest.raises(UpstreamRejected):
        await res.logical_request("GET", script)
    assert len(script.request_ids) == 1
    assert res.breaker.state is BreakerState.CLOSED


async def test_post_is_not_retried_unless_marked_safe() -> None:
    script = Script([e503(), OK])
    with pytest.raises(UpstreamUnavailable):
        await make(FakeClock()).logical_request("POST", script)
    assert len(script.request_ids) == 1
    script = Script([e503(), OK])
    assert await make(FakeClock()).logical_request("POST", script, retry_safe=True) is OK


async def test_breaker_opens_and_stops_calling() -> None:
    clock = FakeClock()
    res = make(clock, attempts=1, threshold=2)
    script = Script([e503(), e503(), OK, OK])
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await res.logical_request("GET", script)
    with pytest.raises(CircuitOpen) as info:
        await res.logical_request("GET", script)
    assert info.value.retry_after == pytest.approx(30.0)
    assert len(script.request_ids) == 2  # the refused call never reached the attempt
    clock.advance(30.0)
    assert await res.logical_request("GET", script) is OK  # the half-open probe
    assert res.breaker.state is BreakerState.CLOSED


async def test_breaker_opening_mid_retry_stops_the_retries() -> None:
    res = make(FakeClock(), attempts=5, threshold=2)
    script = Script([e503(), e503(), OK])
    with pytest.raises(CircuitOpen):
        await res.logical_request("GET", script)
    assert len(script.request_ids) == 2


async def test_rate_limit_waits_inside_the_budget_and_refuses_beyond() -> None:
    clock = FakeClock()
    res = make(clock, rate=1.0, budget=1.5)
    await res.logical_request("GET", Script([OK]))
    await res.logical_request("GET", Script([OK]))  # waits 1s for the next token
    assert clock.sleeps == pytest.approx([1.0])
    script = Script([OK])
    res2 = make(clock, rate=1.0, budget=0.5)
    await res2.logical_request("GET", Script([OK]))
    with pytest.raises(NoSlot):
        await res2.logical_request("GET", script)
    assert script.request_ids == []


async def test_attempt_slower_than_budget_is_a_timeout() -> None:
    res = make(FakeClock(), attempts=1, budget=0.05)

    async def slow(request_id: str) -> UpstreamResponse:
        await asyncio.sleep(5)
        return OK

    with pytest.raises(UpstreamTimeout):
        await res.logical_request("GET", slow)


def ctx(token: str | None = None, **headers: str) -> RequestContext:
    return RequestContext(request_id="r", base_url="http://x", user_token=token, headers=headers)


def test_flight_keys_separate_callers_and_requests() -> None:
    url = "http://pds/Patient/9000000009"
    assert flight_key("GET", url, None, None, ctx("a")) == flight_key(
        "get", url, [], {}, ctx("a", **{"X-Request-ID": "1"})
    )
    assert flight_key("GET", url, None, None, ctx("a")) != flight_key("GET", url, None, None, ctx("b"))
    assert flight_key("GET", url, None, None, ctx()) != flight_key("GET", url, None, None, ctx("a"))
    assert flight_key("GET", url, None, None, ctx(**{"NHSD-Session-URID": "1"})) != flight_key(
        "GET", url, None, None, ctx(**{"NHSD-Session-URID": "2"})
    )
    assert flight_key("GET", url, [("family", "Smith")], None, ctx()) != flight_key("GET", url, None, None, ctx())


def test_identity_does_not_contain_the_token() -> None:
    assert "secret-token" not in ctx("secret-token").caller_identity()


def test_built_from_settings() -> None:
    s = Settings(upstream_rate_limits={"PDS": 7}, upstream_retry_attempts=4, upstream_single_flight=False)
    pds = resilience_for("PDS", resilience_config(s), SourceConfig.resolve(s, SOURCES).rate_limits(s).get("PDS"))
    assert pds.rate_limit is not None and pds.rate_limit.rate == 7
    assert pds.policy.max_attempts == 4 and pds.flights is None
    assert resilience_for("ERS", resilience_config(s)).rate_limit is None


def test_rate_limits_default_to_what_each_source_publishes() -> None:
    """Unset: PDS's published 5/s and no limit elsewhere; set (even empty): exactly as given."""
    assert SourceConfig.resolve(Settings(), SOURCES).rate_limits(Settings()) == {"PDS": 5.0}
    unlimited = Settings(upstream_rate_limits={})
    assert SourceConfig.resolve(unlimited, SOURCES).rate_limits(unlimited) == {}


def test_rate_limits_read_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACADE_UPSTREAM_RATE_LIMITS", '{"PDS": 2.5, "GPC": 5}')
    assert Settings().upstream_rate_limits == {"PDS": 2.5, "GPC": 5.0}


async def test_a_shared_retry_safe_post_keeps_its_retry_flag() -> None:
    """The single-flight path must pass retry_safe on: a vouched-for POST retries like a GET."""
    script = Script([e503(), OK])
    shared = await make(FakeClock()).call("POST", script, retry_safe=True, flight_key=("POST", "/x"))
    assert shared.value is OK
    assert len(script.request_ids) == 2
