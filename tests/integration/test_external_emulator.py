"""FACADE_EMULATOR_URL: one setting points every NHS API without its own URL at a running
emulator (the compose stack), whatever sources are registered."""

from __future__ import annotations

import aiohttp
import pytest
from pydantic import ValidationError

from server.settings import Settings
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import upstream_total
from tests.support.servers import Emulator, FHIRClient, running_facade

NO_URLS = {
    "pds_base_url": None,
    "bars_base_url": None,
    "ers_base_url": None,
    "cpt_base_url": None,
    "gpconnect_base_url": None,
}


async def test_every_unset_api_goes_to_the_external_emulator(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, emulator_url=emulator.url + "/", **NO_URLS) as url:
        before = await upstream_total(http, emulator)
        answer = await CheckedClient(url, http).get("/Patient/9000000009")
        assert answer.status == 200 and answer.body["id"] == "9000000009"
        assert await upstream_total(http, emulator) == before + 1  # asked there, not of an embedded emulator
        _, _, health = await FHIRClient(url, http).get("/_health")
        assert health["upstream"]["mode"] == "sandbox"


@pytest.mark.parametrize("url", ["https://api.service.nhs.uk", "http://emulator.example:9100"])
def test_an_emulator_url_that_is_not_an_emulator_host_stops_the_start(url: str) -> None:
    with pytest.raises(ValidationError, match="FACADE_EMULATOR_URL"):
        Settings(emulator_url=url)


def test_an_emulator_url_on_a_declared_emulator_host_is_accepted() -> None:
    assert Settings(emulator_url="http://emulator:9100", emulator_hosts=["emulator"]).emulator_url
