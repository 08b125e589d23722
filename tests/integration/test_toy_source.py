"""Adding an NHS source is one package and one line (issue 9).

tests/support/toy_source is a complete source (settings, emulator, client and provider,
declaration); the only line that adds it is `(*SOURCES, TOY)` below. Nothing shared is
edited, yet it shows in /metadata and /openapi.json, the emulator serves it, its settings
reach it, the cache keeps it as long as it declares, and its NHS error code is mapped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from server.settings import Settings
from server.sources.config import SourceConfig
from server.sources.registry import SOURCES
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import upstream_counts
from tests.support.servers import Emulator, FHIRClient, running_emulator, running_facade
from tests.support.toy_source.source import SOURCE as TOY

WITH_TOY = (*SOURCES, TOY)  # the one line
DEVICE_PATH = "GET /toy-registry/FHIR/R4/Device/dev-1"


@pytest.fixture
async def toy_emulator() -> AsyncIterator[Emulator]:
    async with running_emulator(WITH_TOY) as emulator:
        yield emulator


async def test_a_new_source_is_advertised_in_metadata_and_openapi(
    toy_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(toy_emulator) as url:
        fhir = CheckedClient(url, http)
        statement = (await fhir.get("/metadata")).body
        device = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Device")
        assert [i["code"] for i in device["interaction"]] == ["read"]
        status, _, openapi = await FHIRClient(url, http).get("/openapi.json")  # plain JSON, not FHIR
        assert status == 200
        assert "/Device/{id}" in openapi["paths"] and "/Device" not in openapi["paths"]


async def test_a_new_source_is_served_from_its_emulator_with_its_own_settings(
    toy_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(toy_emulator, toy_manufacturer="Globex") as url:
        fhir = CheckedClient(url, http)
        answer = await fhir.get("/Device/dev-1")
        assert answer.status == 200
        assert answer.body["deviceName"][0]["name"] == "Infusion pump"
        assert answer.body["manufacturer"] == "Globex"  # FACADE_TOY_MANUFACTURER, given in code
        _, _, health = await FHIRClient(url, http).get("/_health")
        assert health["upstream"]["apis"]["toy"] == "configured"
    assert (await upstream_counts(http, toy_emulator))[DEVICE_PATH] == 1


async def test_a_new_source_is_cached_as_long_as_it_declares(
    toy_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The toy declares 0.5 s of freshness: a second read within it is a hit, one after is not."""
    async with running_facade(toy_emulator, cache_enabled=True) as url:
        fhir = CheckedClient(url, http)
        first = await fhir.get("/Device/dev-1")
        second = await fhir.get("/Device/dev-1")
        assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
        await asyncio.sleep(0.7)
        third = await fhir.get("/Device/dev-1")
        assert third.headers["X-Cache"] in ("MISS", "REVALIDATED")
    assert (await upstream_counts(http, toy_emulator))[DEVICE_PATH] == 2


async def test_a_new_sources_error_codes_are_mapped(toy_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(toy_emulator) as url:
        fhir = CheckedClient(url, http)
        retired = await fhir.get("/Device/dev-retired")
        assert retired.status == 410  # DEVICE_RETIRED: the toy says it means gone
        assert retired.issue["details"]["coding"][0]["code"] == "DEVICE_RETIRED"
        unknown = await fhir.get("/Device/dev-2")
        assert unknown.status == 404


def test_a_new_sources_rate_limit_and_url_follow_from_its_declaration() -> None:
    settings = Settings(toy_base_url="https://toy.example/FHIR/R4/")
    config = SourceConfig.resolve(settings, WITH_TOY)
    assert config.rate_limits(settings)["Toy registry"] == 50.0
    assert config.upstreams("http://127.0.0.1:1")["toy"] == "https://toy.example/FHIR/R4"
    assert config.upstreams("http://127.0.0.1:1")["pds"] == "http://127.0.0.1:1/personal-demographics/FHIR/R4"
    assert config.freshness()["Device"] == 0.5


def test_a_setting_no_source_declares_stops_the_start() -> None:
    """Without the toy registered, its settings name nothing: a typo or a stale variable is refused."""
    with pytest.raises(ValueError, match="toy_base_url"):
        SourceConfig.resolve(Settings(toy_base_url="https://toy.example"), SOURCES)
