"""Stopping the façade while a token renewal is in flight: the lifespan cancels and awaits
the renewal before it closes the aiohttp session, so nothing fails late or is left pending."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import warnings

import aiohttp
import pytest

from tests.integration.test_facade_nhs_auth import PATIENT, require_bearer, signed_jwt_settings
from tests.support.emulator_control import inject
from tests.support.nhs_auth import configure_oauth, oauth_stats, register_client
from tests.support.servers import Emulator, FHIRClient, running_facade

LIFETIME = 3  # seconds: renewal starts after 2.4 s, the token is used until 2.7 s


async def test_stopping_with_a_renewal_in_flight_is_prompt_and_clean(
    emulator: Emulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    await register_client(http, emulator.url)
    await require_bearer(http, emulator, "app")
    await configure_oauth(http, emulator.url, expires_in=LIFETIME)
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with running_facade(emulator, **signed_jwt_settings(emulator)) as url:
            facade = FHIRClient(url, http)
            started = time.monotonic()
            status, _, _ = await facade.get(PATIENT)
            assert status == 200
            await inject(http, emulator, path_prefix="/oauth2", delay=2)
            await asyncio.sleep(max(0.0, LIFETIME * 0.8 + 0.05 - (time.monotonic() - started)))
            # Past renew_at, before expiry: answered with the cached token, renewal in the background.
            request = asyncio.ensure_future(facade.get(PATIENT))
            await asyncio.sleep(0.3)
            assert (await oauth_stats(http, emulator.url))["token_requests"] >= 1
            stopping = loop.time()
        stopped_in = loop.time() - stopping
        await asyncio.wait_for(request, 5)
        await asyncio.sleep(2.0)  # past the delayed token answer: a surviving renewal would now run on
        gc.collect()
    assert stopped_in < 1.5, stopped_in
    problems = [
        r.getMessage()
        for r in caplog.records
        if "renewal failed" in r.getMessage()
        or "destroyed but it is pending" in r.getMessage()
        or "Unclosed" in r.getMessage()
    ]
    assert problems == []
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
