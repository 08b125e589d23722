"""Integration fixtures: the shared emulator + façade, seen through the checking client."""
from __future__ import annotations

import aiohttp
import pytest

from tests.support.checked_client import CheckedClient
from tests.support.servers import FHIRClient


@pytest.fixture
def fhir(facade: FHIRClient, http: aiohttp.ClientSession) -> CheckedClient:
    return CheckedClient(facade.base_url, http)
