"""The per-caller NHS quota: token buckets per caller with a fake clock, and how the NHS
client charges them (first attempts may be refused, retries are debited, single-flight
joiners and callers without a principal are never charged). No network."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from multidict import CIMultiDict

from server.access.principal import Principal
from server.access.quota import CallerQuota, caller_key
from server.access.scopes import ScopeSet
from server.fhir.errors import TooManyRequests
from server.nhs.circuit_breaker import CircuitBreaker
from server.nhs.client import ClientConfig, NHSClient, UpstreamCall, UpstreamResponse
from server.nhs.concurrency_limit import ConcurrencyLimit
from server.nhs.errors import UpstreamUnavailable
from server.nhs.resilience import Resilience
from server.nhs.resilient_client import ResilientClient
from server.nhs.retry_policy import RetryPolicy
from server.nhs.single_flight import SingleFlight
from server.providers.base import RequestContext
from tests.support.fake_clock import FakeClock

ISSUER = "https://login.trust.example"


def who(subject: str = "alice", client_id: str | None = "ward-app", issuer: str = ISSUER) -> Principal:
    return Principal(subject=subject, issuer=issuer, scopes=ScopeSet.parse("user/*.rs"), client_id=client_id)


def test_a_caller_gets_its_burst_then_429_with_retry_after() -> None:
    clock = FakeClock()
    quota = CallerQuota(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        quota.take(who(), "PDS")
    with pytest.raises(TooManyRequests) as caught:
        quota.take(who(), "PDS")
    err = caught.value
    assert err.status == 429 and err.headers == {"Retry-After": "1"}
    outcome = err.outcome()["issue"][0]
    assert outcome["code"] == "throttled" and outcome["severity"] == "error" and "PDS" in outcome["diagnostics"]
    assert quota.available(who()) == 0  # a refusal charges nothing


def test_the_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    quota = CallerQuota(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        quota.take(who(), "PDS")
    clock.advance(0.5)
    quota.take(who(), "PDS")  # one token back after 1/rate seconds
    with pytest.raises(TooManyRequests):
        quota.take(who(), "PDS")
    clock.advance(3600)
    assert quota.available(who()) == 3  # never more than the burst


def test_callers_are_issuer_subject_and_client() -> None:
    quota = CallerQuota(rate=1.0, burst=1, clock=FakeClock())
    quota.take(who(), "PDS")
    for other in (who("bob"), who(client_id="pas-bridge"), who(client_id=None), who(issuer="https://cis2.example")):
        quota.take(other, "PDS")  # each has its own bucket
    assert caller_key(who(client_id=None)) == (ISSUER, "alice", "")
    with pytest.raises(TooManyRequests):
        quota.take(who(), "PDS")


def test_retries_are_debited_below_zero_and_repaid_before_the_next_request() -> None:
    clock = FakeClock()
    quota = CallerQuota(rate=1.0, burst=1, clock=clock)
    quota.take(who(), "PDS")
    quota.debit(who())
    quota.debit(who())
    assert quota.available(who()) == -2
    clock.advance(2.5)
    with pytest.raises(TooManyRequests) as caught:
        quota.take(who(), "PDS")
    assert caught.value.headers["Retry-After"] == "1"  # 0.5 token short at 1/s: rounded up
    clock.advance(0.5)
    quota.take(who(), "PDS")


def test_tracked_callers_are_bounded_least_recently_used_first() -> None:
    quota = CallerQuota(rate=0.001, burst=1, clock=FakeClock(), max_callers=2)
    quota.take(who("a"), "PDS")
    quota.take(who("b"), "PDS")
    quota.available(who("a"))  # a is used again: b is now the least recent
    quota.take(who("c"), "PDS")
    assert quota.tracked == 2
    with pytest.raises(TooManyRequests):
        quota.take(who("a"), "PDS")  # still tracked, still empty
    quota.take(who("b"), "PDS")  # evicted, so back with a full bucket


@pytest.mark.parametrize("rate, burst, callers", [(0, 1, 1), (1, 0.5, 1), (1, 1, 0)])
def test_nonsense_configuration_is_refused(rate: float, burst: float, callers: int) -> None:
    with pytest.raises(ValueError):
        CallerQuota(rate=rate, burst=burst, max_callers=callers)


# ---- charged by the NHS client -------------------------------------------------------------

OK = UpstreamResponse(200, {}, {"resourceType": "Patient", "id": "9000000009"}, "")


class Sent:
    """Stands in for the network: records each attempt, answers from a script."""

    def __init__(self, *outcomes: Any, delay: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.count = 0
        self.delay = delay

    async def __call__(
        self, client: NHSClient, call: UpstreamCall, ctx: RequestContext, request_id: str
    ) -> UpstreamResponse:
        self.count += 1
        await asyncio.sleep(self.delay)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def plain_client(sent: Sent) -> NHSClient:
    client = NHSClient(None, ClientConfig("PDS", "http://pds.test"))  # type: ignore[arg-type]
    client._attempt = lambda call, ctx, request_id: sent(client, call, ctx, request_id)  # type: ignore[method-assign]
    return client


def resilient_client(sent: Sent, clock: FakeClock) -> ResilientClient:
    resilience = Resilience(
        api="PDS",
        policy=RetryPolicy(3, 0.1, 1.0),
        budget=10.0,
        breaker=CircuitBreaker("PDS", 5, 30.0, clock),
        concurrency=ConcurrencyLimit("PDS", 4),
        rate_limit=None,
        flights=SingleFlight(),
        clock=clock,
        random=lambda: 0.5,
    )
    client = ResilientClient(None, ClientConfig("PDS", "http://pds.test"), resilience)  # type: ignore[arg-type]
    client._attempt = lambda call, ctx, request_id: sent(client, call, ctx, request_id)  # type: ignore[method-assign]
    return client


def ctx(quota: CallerQuota | None, principal: Principal | None = None) -> RequestContext:
    return RequestContext(request_id="r", base_url="http://f", principal=principal, quota=quota)


async def test_an_over_quota_request_is_never_sent() -> None:
    quota = CallerQuota(rate=1.0, burst=1, clock=FakeClock())
    sent = Sent(OK)
    client = plain_client(sent)
    await client.request("GET", "Patient/9000000009", ctx(quota, who()))
    with pytest.raises(TooManyRequests):
        await client.request("GET", "Patient/9000000009", ctx(quota, who()))
    assert sent.count == 1


async def test_internal_calls_without_a_principal_are_not_charged() -> None:
    quota = CallerQuota(rate=1.0, burst=1, clock=FakeClock())
    sent = Sent(OK)
    client = plain_client(sent)
    for _ in range(5):
        await client.request("GET", "Patient/9000000009", ctx(quota))
    assert sent.count == 5 and quota.tracked == 0


async def test_each_retry_sent_is_charged_even_past_the_quota() -> None:
    clock = FakeClock()
    quota = CallerQuota(rate=0.001, burst=1, clock=clock)
    sent = Sent(
        UpstreamUnavailable("PDS", "HTTP 503", status=503), UpstreamUnavailable("PDS", "HTTP 503", status=503), OK
    )
    response = await resilient_client(sent, clock).request("GET", "Patient/9000000009", ctx(quota, who()))
    assert response is OK and sent.count == 3
    assert quota.available(who()) == pytest.approx(-2, abs=0.01)  # 1 taken + 2 retries debited


async def test_single_flight_joiners_cost_nothing() -> None:
    clock = FakeClock()
    quota = CallerQuota(rate=0.001, burst=1, clock=clock)
    sent = Sent(OK, delay=0.01)
    client = resilient_client(sent, clock)
    # application-restricted: no user token, so both callers share one flight
    results = await asyncio.gather(
        client.request("GET", "Patient/9000000009", ctx(quota, who("alice"))),
        client.request("GET", "Patient/9000000009", ctx(quota, who("bob"))),
    )
    assert all(r.body == OK.body for r in results) and sent.count == 1
    assert sorted(quota.available(p) for p in (who("alice"), who("bob"))) == pytest.approx([0, 1], abs=0.01)


async def test_a_joiner_reads_the_shared_answers_headers_in_any_case() -> None:
    """NHS gateways send lower-case names; the leader's headers are case-insensitive, and so
    is each joiner's own copy of them (it was a plain dict: "ETag" missed "etag")."""
    answer = UpstreamResponse(200, CIMultiDict({"etag": 'W/"3"'}), {"resourceType": "Patient", "id": "9"}, "")
    client = resilient_client(Sent(answer, delay=0.01), FakeClock())
    leader, joiner = await asyncio.gather(
        client.request("GET", "Patient/9", ctx(None)), client.request("GET", "Patient/9", ctx(None))
    )
    assert sorted([leader.headers.get("ETag"), joiner.headers.get("ETag")]) == ['W/"3"', 'W/"3"']
    assert leader.body is not joiner.body  # each its own copy


async def test_a_throttled_caller_never_fails_the_flight_of_another() -> None:
    clock = FakeClock()
    quota = CallerQuota(rate=0.001, burst=1, clock=clock)
    quota.take(who("alice"), "PDS")  # alice has nothing left
    sent = Sent(OK, delay=0.01)
    client = resilient_client(sent, clock)
    alice, bob = await asyncio.gather(
        client.request("GET", "Patient/9000000009", ctx(quota, who("alice"))),
        client.request("GET", "Patient/9000000009", ctx(quota, who("bob"))),
        return_exceptions=True,
    )
    assert isinstance(alice, TooManyRequests)
    assert isinstance(bob, UpstreamResponse) and sent.count == 1
    assert quota.available(who("bob")) == pytest.approx(0, abs=0.01)
