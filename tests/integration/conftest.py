"""Integration fixtures: the shared emulator + façade, seen through the checking client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.checked_client import CheckedClient
from tests.support.servers import Emulator, FHIRClient, running_facade


@pytest.fixture
def fhir(facade: FHIRClient, http: aiohttp.ClientSession) -> CheckedClient:
    return CheckedClient(facade.base_url, http)


@pytest.fixture
async def strict(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[CheckedClient]:
    """A façade with the relationship check on, as deployed (the harness turns it off)."""
    async with running_facade(emulator, relationship_required=True) as url:
        yield CheckedClient(url, http)
