"""Over real sockets: each caller's NHS quota. A caller over quota gets 429 `throttled` with
Retry-After and NHS (the emulator) is not asked; other callers are unaffected; cache hits
cost nothing."""

from __future__ import annotations

import aiohttp

from server.access.principal import Principal
from server.access.quota import CallerQuota
from server.access.scopes import ScopeSet
from server.fhir.errors import TooManyRequests
from server.nhs.client import ClientConfig
from server.nhs.resilience import resilience_for
from server.nhs.resilient_client import ResilientClient
from server.providers.base import RequestContext
from server.settings import Settings
from server.sources.wiring import resilience_config
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import upstream_total
from tests.support.fake_clock import FakeClock
from tests.support.servers import Emulator, running_facade
from tests.support.tokens import bearer, token

NUMBERS = ("9000000009", "9000000017", "9000000092")


def who(subject: str) -> Principal:
    return Principal(subject=subject, issuer="https://login.trust.example", scopes=ScopeSet.parse("user/*.rs"))


async def test_the_nhs_client_stops_sending_for_a_caller_over_quota(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    quota = CallerQuota(rate=0.01, burst=2, clock=FakeClock())
    pds = ResilientClient(
        http, ClientConfig("PDS", emulator.pds_url), resilience_for("PDS", resilience_config(Settings()))
    )

    async def read(nhs: str, subject: str) -> int | TooManyRequests:
        ctx = RequestContext(request_id="it", base_url="http://f", principal=who(subject), quota=quota)
        try:
            return (await pds.request("GET", f"Patient/{nhs}", ctx)).status
        except TooManyRequests as err:
            return err

    results = [await read(nhs, "alice") for nhs in NUMBERS]
    assert results[:2] == [200, 200] and isinstance(results[2], TooManyRequests)
    assert results[2].headers["Retry-After"] == "100"  # one request at 0.01/s
    assert await upstream_total(http, emulator) == 2
    assert await read("9000000092", "bob") == 200  # another caller has its own quota
    assert await upstream_total(http, emulator) == 3


async def test_the_facade_answers_429_throttled_with_retry_after(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(emulator, caller_nhs_rate=0.01, caller_nhs_burst=2) as url:
        fhir = CheckedClient(url, http)
        answers = [await fhir.get(f"/Patient/{nhs}") for nhs in NUMBERS]
        assert [a.status for a in answers] == [200, 200, 429]
        refused = answers[2]
        assert refused.issue["code"] == "throttled" and int(refused.headers["Retry-After"]) >= 1
        assert await upstream_total(http, emulator) == 2  # the refused read never reached NHS
        other = await fhir.get("/Patient/9000000092", headers=bearer(token(subject="another-user")))
        assert other.status == 200


async def test_cache_hits_cost_nothing(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, cache_enabled=True, caller_nhs_rate=0.01, caller_nhs_burst=1) as url:
        fhir = CheckedClient(url, http)
        statuses = [(await fhir.get("/Patient/9000000009")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert await upstream_total(http, emulator) == 1
