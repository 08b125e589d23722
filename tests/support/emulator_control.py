"""Drive the emulator's /_control API over HTTP, as a test client would."""
from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.servers import Emulator

PDS_PREFIX = "/personal-demographics/FHIR/R4"


async def upstream_requests(http: aiohttp.ClientSession, emulator: Emulator) -> dict[str, Any]:
    """Counts, X-Request-IDs and NHS context headers the emulator received."""
    async with http.get(emulator.url + "/_control/requests") as resp:
        return await resp.json()


async def upstream_total(http: aiohttp.ClientSession, emulator: Emulator) -> int:
    return int((await upstream_requests(http, emulator))["total"])


async def inject(http: aiohttp.ClientSession, emulator: Emulator, **fault: Any) -> None:
    """Queue a fault (see server/sandbox/faults.py Fault) for the next matching requests."""
    fault.setdefault("path_prefix", PDS_PREFIX)
    async with http.post(emulator.url + "/_control/faults", json=fault) as resp:
        assert resp.status == 200
