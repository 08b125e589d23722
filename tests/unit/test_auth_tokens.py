"""Token cache (renewal timing, one shared renewal), token response parsing, and how token
endpoint failures reach the client (through server.providers.upstream_errors.to_fhir_error)."""

from __future__ import annotations

import asyncio

import pytest

from server.fhir import errors as fe
from server.nhs.auth.token_endpoint import token_error
from server.nhs.auth.tokens import IssuedToken, TokenCache, parse_token_response
from server.nhs.errors import (
    UpstreamBadResponse,
    UpstreamCredentialsRejected,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from server.providers.upstream_errors import to_fhir_error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeEndpoint:
    """Counts token requests; each answer can be held back to create concurrency."""

    def __init__(self, lifetime: float = 600.0) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def fetch(self) -> IssuedToken:
        self.calls += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return IssuedToken(f"token-{self.calls}", self.lifetime)


async def test_token_is_cached_until_80_percent_of_its_life() -> None:
    clock, endpoint = Clock(), FakeEndpoint(lifetime=600)
    cache = TokenCache(endpoint.fetch, clock=clock)
    assert await cache.get() == "token-1"
    clock.now += 479  # 80% of 600 is 480
    assert await cache.get() == "token-1"
    assert endpoint.calls == 1


async def test_renewal_starts_at_80_percent_while_the_old_token_is_still_served() -> None:
    clock, endpoint = Clock(), FakeEndpoint(lifetime=600)
    cache = TokenCache(endpoint.fetch, clock=clock)
    await cache.get()
    endpoint.gate.clear()
    clock.now += 481
    assert await cache.get() == "token-1"  # no wait: still valid
    await asyncio.sleep(0)
    assert endpoint.calls == 2  # the renewal has begun
    endpoint.gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await cache.get() == "token-2"
    assert endpoint.calls == 2


async def test_expired_token_makes_callers_wait_for_the_new_one() -> None:
    clock, endpoint = Clock(), FakeEndpoint(lifetime=600)
    cache = TokenCache(endpoint.fetch, clock=clock)
    await cache.get()
    clock.now += 600
    assert await cache.get() == "token-2"


async def test_token_is_not_used_in_its_last_seconds() -> None:
    clock, endpoint = Clock(), FakeEndpoint(lifetime=600)
    cache = TokenCache(endpoint.fetch, clock=clock)
    await cache.get()
    endpoint.gate.clear()
    clock.now += 597  # 3 s left, inside the safety margin
    waiter = asyncio.ensure_future(cache.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    endpoint.gate.set()
    assert await waiter == "token-2"


async def test_fifty_concurrent_callers_share_one_token_request() -> None:
    endpoint = FakeEndpoint()
    endpoint.gate.clear()
    cache = TokenCache(endpoint.fetch, clock=Clock())
    callers = [asyncio.ensure_future(cache.get()) for _ in range(50)]
    await asyncio.sleep(0)
    endpoint.gate.set()
    assert set(await asyncio.gather(*callers)) == {"token-1"}
    assert endpoint.calls == 1


async def test_fifty_concurrent_callers_after_expiry_share_one_renewal() -> None:
    clock, endpoint = Clock(), FakeEndpoint(lifetime=10)
    cache = TokenCache(endpoint.fetch, clock=clock)
    await cache.get()
    clock.now += 100
    endpoint.gate.clear()
    callers = [asyncio.ensure_future(cache.get()) for _ in range(50)]
    await asyncio.sleep(0)
    endpoint.gate.set()
    assert set(await asyncio.gather(*callers)) == {"token-2"}
    assert endpoint.calls == 2


async def test_failed_renewal_reaches_every_waiter_and_the_next_call_retries() -> None:
    endpoint = FakeEndpoint()
    endpoint.fail = UpstreamUnavailable("NHS token endpoint", "HTTP 503", status=503)
    endpoint.gate.clear()
    cache = TokenCache(endpoint.fetch, clock=Clock())
    callers = [asyncio.ensure_future(cache.get()) for _ in range(5)]
    await asyncio.sleep(0)
    endpoint.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    assert endpoint.calls == 1
    endpoint.fail = None
    assert await cache.get() == "token-2"


async def test_cancelled_caller_does_not_cancel_the_shared_renewal() -> None:
    endpoint = FakeEndpoint()
    endpoint.gate.clear()
    cache = TokenCache(endpoint.fetch, clock=Clock())
    first = asyncio.ensure_future(cache.get())
    second = asyncio.ensure_future(cache.get())
    await asyncio.sleep(0)
    first.cancel()
    endpoint.gate.set()
    assert await second == "token-1"
    assert endpoint.calls == 1


async def test_background_renewal_failure_keeps_the_valid_token_and_retries_later() -> None:
    clock, endpoint = Clock(), FakeEndpoint(lifetime=600)
    cache = TokenCache(endpoint.fetch, clock=clock)
    await cache.get()
    endpoint.fail = UpstreamTimeout("NHS token endpoint", "timed out")
    clock.now += 500
    assert await cache.get() == "token-1"
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    endpoint.fail = None
    assert await cache.get() == "token-1"  # starts another renewal
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await cache.get() == "token-3"


# --- token response parsing -------------------------------------------------------------


def test_nhs_string_expires_in_is_parsed() -> None:
    body = {"access_token": "abc", "expires_in": "599", "token_type": "Bearer", "issued_at": "1700000000000"}
    assert parse_token_response(body) == IssuedToken("abc", 599.0)


@pytest.mark.parametrize("expires_in", [599, 599.0, " 599 "])
def test_numeric_expires_in_is_also_accepted(expires_in: object) -> None:
    assert parse_token_response({"access_token": "abc", "expires_in": expires_in}).lifetime == 599.0


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "token",
        {"expires_in": "599"},
        {"access_token": "", "expires_in": "599"},
        {"access_token": "abc"},
        {"access_token": "abc", "expires_in": "soon"},
        {"access_token": "abc", "expires_in": "0"},
        {"access_token": "abc", "expires_in": "-5"},
        {"access_token": "abc", "expires_in": "nan"},
        {"access_token": "abc", "expires_in": "inf"},
        {"access_token": "abc", "expires_in": True},
        {"access_token": "abc", "expires_in": "599", "token_type": "MAC"},
    ],
)
def test_unusable_token_responses_are_bad_responses(body: object) -> None:
    with pytest.raises(UpstreamBadResponse):
        parse_token_response(body)


def test_issued_token_repr_hides_the_token() -> None:
    assert "secret-token" not in repr(IssuedToken("secret-token", 599))


# --- token endpoint failures -> client status -------------------------------------------

KID_ERROR = {
    "error": "invalid_request",
    "error_description": "Invalid 'kid' header in client_assertion JWT - no matching public key",
    "message_id": "rrt-1",
}


@pytest.mark.parametrize("status", [400, 401, 403])
def test_refused_credentials_are_a_bad_gateway_for_the_client(status: int) -> None:
    err = token_error(status, KID_ERROR)
    assert isinstance(err, UpstreamCredentialsRejected)
    mapped = to_fhir_error(err)
    assert isinstance(mapped, fe.BadGateway) and mapped.status == 502
    assert "refused the façade's credentials" in mapped.diagnostics
    assert "no matching public key" in mapped.diagnostics and "rrt-1" in mapped.diagnostics


def test_refused_subject_token_is_the_callers_401() -> None:
    err = token_error(400, {"error": "invalid_request", "error_description": "subject_token is invalid"})
    mapped = to_fhir_error(err)
    assert mapped.status == 401 and "WWW-Authenticate" in mapped.headers
    assert "user's token" in mapped.diagnostics


def test_token_endpoint_outages_map_like_any_upstream() -> None:
    assert isinstance(token_error(429, None), UpstreamRateLimited)
    assert to_fhir_error(token_error(429, None)).status == 503
    assert to_fhir_error(token_error(503, None)).status == 503
    assert to_fhir_error(token_error(504, None)).status == 504
    assert to_fhir_error(token_error(302, None)).status == 502


def test_non_json_error_body_still_maps() -> None:
    mapped = to_fhir_error(token_error(401, None))
    assert mapped.status == 502 and "HTTP 401" in mapped.diagnostics


async def test_aclose_cancels_and_awaits_a_renewal_in_flight() -> None:
    started = asyncio.Event()

    async def never_answers() -> IssuedToken:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    cache = TokenCache(never_answers)
    waiter = asyncio.ensure_future(cache.get())
    await started.wait()
    renewal = cache._renewal
    assert renewal is not None
    await cache.aclose()
    assert renewal.cancelled() and cache._renewal is None
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
