"""Resilience over real sockets: façade -> emulator with injected faults, counted by the emulator.

Delays are short (settings overrides) so the suite stays fast. Timing assertions are
lower bounds derived from the limits (load on the box can only widen gaps), never
upper bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.emulator_control import inject, reset_emulator, upstream_requests
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator, FHIRClient, running_facade

PATIENT = "/Patient/9000000009"
FAST = dict(
    upstream_backoff_base=0.01, upstream_backoff_max=0.05, upstream_request_budget=3.0, upstream_breaker_threshold=100
)


@contextlib.asynccontextmanager
async def facade_with(emulator: Emulator, http: aiohttp.ClientSession, **overrides: Any) -> AsyncIterator[FHIRClient]:
    async with running_facade(emulator, **{**FAST, **overrides}) as url:
        yield FHIRClient(url, http)


def assert_outcome(body: Any) -> None:
    assert body["resourceType"] == "OperationOutcome"
    validate_r4(body)


async def test_503_then_success_is_retried_with_the_same_request_id(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, status=503, times=1)
        status, _, body = await facade.get(PATIENT)
    assert status == 200 and body["id"] == "9000000009"
    upstream = await upstream_requests(http, emulator)
    assert upstream["total"] == 2
    assert len(set(upstream["request_ids"])) == 1


async def test_429_without_retry_after_backs_off_and_retries(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, status=429, times=2)  # PDS sends no Retry-After on 429
        status, _, _ = await facade.get(PATIENT)
    assert status == 200
    upstream = await upstream_requests(http, emulator)
    assert upstream["total"] == 3 and len(set(upstream["request_ids"])) == 1


async def test_429_retry_after_is_honoured(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, status=429, retry_after="1", times=1)
        status, _, _ = await facade.get(PATIENT)
    assert status == 200
    arrivals = (await upstream_requests(http, emulator))["arrivals"]
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.95  # waited as told, not the 10-50 ms backoff


async def test_retry_after_longer_than_the_budget_reaches_the_client(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with facade_with(emulator, http, upstream_request_budget=2.0) as facade:
        await inject(http, emulator, status=429, retry_after="30", times=1)
        status, headers, body = await facade.get(PATIENT)
    assert status == 503
    assert headers["Retry-After"] == "30"
    assert_outcome(body)
    assert (await upstream_requests(http, emulator))["total"] == 1


async def test_persistent_503_gives_503_with_retry_after_after_max_attempts(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with facade_with(emulator, http, upstream_retry_attempts=3) as facade:
        await inject(http, emulator, status=503, times=-1)
        status, headers, body = await facade.get(PATIENT)
    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    assert_outcome(body)
    upstream = await upstream_requests(http, emulator)
    assert upstream["total"] == 3 and len(set(upstream["request_ids"])) == 1


async def test_read_timeout_gives_504(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http, upstream_read_timeout=0.2, upstream_retry_attempts=2) as facade:
        await inject(http, emulator, delay=1.0, times=-1)
        status, headers, body = await facade.get(PATIENT)
    assert status == 504
    assert "Retry-After" in headers
    assert_outcome(body)
    assert (await upstream_requests(http, emulator))["total"] == 2  # timeouts are retried, same X-Request-ID


async def test_budget_bounds_the_whole_request(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http, upstream_request_budget=0.3, upstream_retry_attempts=5) as facade:
        await inject(http, emulator, delay=2.0, times=-1)
        status, _, body = await facade.get(PATIENT)
    assert status == 504
    assert_outcome(body)
    assert (await upstream_requests(http, emulator))["total"] == 1  # no time left for a second attempt


async def test_connection_reset_is_retried(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, reset=True, times=1)
        status, _, body = await facade.get(PATIENT)
    assert status == 200 and body["id"] == "9000000009"
    upstream = await upstream_requests(http, emulator)
    assert upstream["total"] == 2 and len(set(upstream["request_ids"])) == 1


async def test_persistent_resets_give_503(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http, upstream_retry_attempts=2) as facade:
        await inject(http, emulator, reset=True, times=-1)
        status, headers, body = await facade.get(PATIENT)
    assert status == 503 and "Retry-After" in headers
    assert_outcome(body)
    assert (await upstream_requests(http, emulator))["total"] == 2


@pytest.mark.parametrize("fault", [{"malformed": True}, {"status": 500}], ids=["malformed-body", "http-500"])
async def test_malformed_body_or_500_is_502_and_not_retried(
    emulator: Emulator, http: aiohttp.ClientSession, fault: dict[str, Any]
) -> None:
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, times=1, **fault)
        status, _, body = await facade.get(PATIENT)
    assert status == 502
    assert_outcome(body)
    assert (await upstream_requests(http, emulator))["total"] == 1


async def test_404_is_not_retried(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http) as facade:
        status, _, body = await facade.get("/Patient/9111231130")
    assert status == 404
    assert_outcome(body)
    assert (await upstream_requests(http, emulator))["total"] == 1


async def test_nhs_400_is_400_and_not_retried(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "value",
                "diagnostics": "Invalid value - 'xx' in field 'gender'",
                "details": {
                    "coding": [
                        {
                            "system": "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode",
                            "code": "INVALID_VALUE",
                            "display": "Provided value is invalid",
                        }
                    ]
                },
            }
        ],
    }
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, status=400, body=outcome, times=1)
        status, _, body = await facade.get("/Patient?family=Smith&birthdate=2010-10-22&gender=male")
    assert status == 400
    assert_outcome(body)
    assert "gender" in body["issue"][0]["diagnostics"]
    assert (await upstream_requests(http, emulator))["total"] == 1


async def test_breaker_opens_fails_fast_then_probes(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(
        emulator, http, upstream_retry_attempts=1, upstream_breaker_threshold=3, upstream_breaker_open_seconds=1.0
    ) as facade:
        await inject(http, emulator, status=503, times=-1)
        for _ in range(3):
            assert (await facade.get(PATIENT))[0] == 503
        assert (await upstream_requests(http, emulator))["total"] == 3
        for _ in range(5):
            status, headers, body = await facade.get(PATIENT)
            assert status == 503
            assert headers["Retry-After"] == "1"  # seconds until the probe, rounded up to 1
            assert "circuit" in body["issue"][0]["diagnostics"]
            assert_outcome(body)
        assert (await upstream_requests(http, emulator))["total"] == 3  # open: NHS saw nothing more

        await reset_emulator(http, emulator)  # NHS recovers
        await asyncio.sleep(1.05)
        status, _, _ = await facade.get(PATIENT)  # the half-open probe
        assert status == 200
        assert (await facade.get(PATIENT))[0] == 200  # closed again
        assert (await upstream_requests(http, emulator))["total"] == 2


async def test_failed_probe_reopens(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(
        emulator, http, upstream_retry_attempts=1, upstream_breaker_threshold=2, upstream_breaker_open_seconds=0.5
    ) as facade:
        await inject(http, emulator, status=502, times=-1)
        for _ in range(2):
            await facade.get(PATIENT)
        await asyncio.sleep(0.55)
        assert (await facade.get(PATIENT))[0] == 503  # the probe reached NHS and failed
        assert (await upstream_requests(http, emulator))["total"] == 3
        status, _, body = await facade.get(PATIENT)
        assert status == 503 and "circuit" in body["issue"][0]["diagnostics"]
        assert (await upstream_requests(http, emulator))["total"] == 3


async def test_4xx_do_not_open_the_breaker(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http, upstream_retry_attempts=1, upstream_breaker_threshold=2) as facade:
        for _ in range(4):
            assert (await facade.get("/Patient/9111231130"))[0] == 404
        assert (await facade.get(PATIENT))[0] == 200
    assert (await upstream_requests(http, emulator))["total"] == 5


async def test_single_flight_50_concurrent_reads_one_upstream_call(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, delay=0.5, times=-1)  # keeps the one call in flight while all 50 arrive
        results = await asyncio.gather(*(facade.get(PATIENT) for _ in range(50)))
    assert [status for status, _, _ in results] == [200] * 50
    assert all(body == results[0][2] for _, _, body in results)
    validate_r4(results[0][2])
    assert (await upstream_requests(http, emulator))["total"] == 1


async def test_single_flight_shares_failures_too(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http, upstream_retry_attempts=1) as facade:
        await inject(http, emulator, delay=0.3, status=503, times=-1)
        results = await asyncio.gather(*(facade.get(PATIENT) for _ in range(10)))
    assert [status for status, _, _ in results] == [503] * 10
    assert (await upstream_requests(http, emulator))["total"] == 1


async def test_single_flight_never_shares_across_user_tokens(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, delay=0.3, times=-1)
        tokens = ["token-a", "token-b", "token-a", "token-b", "token-a"]
        results = await asyncio.gather(*(facade.get(PATIENT, headers={"X-NHS-User-Token": t}) for t in tokens))
    assert [status for status, _, _ in results] == [200] * 5
    assert (await upstream_requests(http, emulator))["total"] == 2


async def test_without_single_flight_every_read_goes_upstream(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(emulator, http, upstream_single_flight=False) as facade:
        await inject(http, emulator, delay=0.2, times=-1)
        results = await asyncio.gather(*(facade.get(PATIENT) for _ in range(10)))
    assert [status for status, _, _ in results] == [200] * 10
    assert (await upstream_requests(http, emulator))["total"] == 10


async def test_rate_limit_spaces_requests(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    rate = 10.0
    async with facade_with(
        emulator, http, upstream_rate_limits={"PDS": rate}, upstream_single_flight=False, upstream_request_budget=5.0
    ) as facade:
        results = await asyncio.gather(*(facade.get(PATIENT) for _ in range(6)))
    assert [status for status, _, _ in results] == [200] * 6
    arrivals = (await upstream_requests(http, emulator))["arrivals"]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    # Requests leave at least 1/rate apart; 50 ms covers jitter in transit to the emulator.
    assert min(gaps) >= 1 / rate - 0.05, gaps


async def test_rate_limit_refuses_what_does_not_fit_the_budget(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with facade_with(
        emulator, http, upstream_rate_limits={"PDS": 5}, upstream_single_flight=False, upstream_request_budget=0.5
    ) as facade:
        results = await asyncio.gather(*(facade.get(PATIENT) for _ in range(10)))
    statuses = [status for status, _, _ in results]
    ok = statuses.count(200)
    assert 1 <= ok < 10 and statuses.count(503) == 10 - ok
    assert all("Retry-After" in headers for status, headers, _ in results if status == 503)
    assert all(
        "client-side rate limit" in body["issue"][0]["diagnostics"] for status, _, body in results if status == 503
    )
    assert (await upstream_requests(http, emulator))["total"] == ok  # the refused ones never reached NHS


async def test_concurrency_limit_caps_requests_in_flight(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    delay = 0.3
    async with facade_with(
        emulator, http, upstream_concurrency=2, upstream_single_flight=False, upstream_request_budget=5.0
    ) as facade:
        await inject(http, emulator, delay=delay, times=-1)
        results = await asyncio.gather(*(facade.get(PATIENT) for _ in range(6)))
    assert [status for status, _, _ in results] == [200] * 6
    arrivals = (await upstream_requests(http, emulator))["arrivals"]
    # With at most 2 in flight, request i can start only after one of the two before it
    # finished its `delay`-long handling.
    assert all(arrivals[i] - arrivals[i - 2] >= delay for i in range(2, len(arrivals))), arrivals


@pytest.mark.parametrize("nhs_status", [401, 403])
async def test_nhs_refusing_our_credentials_is_502_and_not_retried(
    emulator: Emulator, http: aiohttp.ClientSession, nhs_status: int
) -> None:
    async with facade_with(emulator, http) as facade:
        await inject(http, emulator, status=nhs_status, times=1)
        status, _, body = await facade.get(PATIENT)
    assert status == 502
    assert_outcome(body)
    assert "credentials" in body["issue"][0]["diagnostics"]
    assert (await upstream_requests(http, emulator))["total"] == 1
