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


async def upstream_counts(http: aiohttp.ClientSession, emulator: Emulator) -> dict[str, int]:
    """Requests received per "METHOD path?query"."""
    return dict((await upstream_requests(http, emulator))["counts"])


async def inject(http: aiohttp.ClientSession, emulator: Emulator, **fault: Any) -> None:
    """Queue a fault (see server/sandbox/faults.py Fault) for the next matching requests
    (under PDS unless `path_prefix` names another API)."""
    fault.setdefault("path_prefix", PDS_PREFIX)
    async with http.post(emulator.url + "/_control/faults", json=fault) as resp:
        assert resp.status == 200


async def reset_emulator(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    """Drop every queued fault and the request counts (/_control/reset)."""
    async with http.post(emulator.url + "/_control/reset") as resp:
        assert resp.status == 200


async def gpconnect_jwt_claims(http: aiohttp.ClientSession, emulator: Emulator) -> list[dict[str, Any]]:
    """The decoded GP Connect consumer JWT claims the emulator received, oldest first."""
    async with http.get(emulator.url + "/_control/gpconnect/jwt") as resp:
        return list((await resp.json())["claims"])
