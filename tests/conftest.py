"""Shared fixtures: a fresh emulator and façade per test, on real loopback sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.mongo import mongo_db, mongo_server  # noqa: F401  (fixtures for the cache tests)
from tests.support.servers import Emulator, FHIRClient, running_emulator, running_facade


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def facade(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[FHIRClient]:
    async with running_facade(emulator) as url:
        yield FHIRClient(url, http)
