"""Two façades on one MongoDB share one state (issue 11): page snapshots, the read-through
cache with its restricted-patient purge, and the NHS rate budget per API.

Both façades run in this test process (tests/support/servers.py running_facade on two
ports), each with its own app, lifespan, MongoDB client and stores: nothing they share
lives in Python memory, so whatever one sees of the other went through MongoDB. The
emulator is the NHS upstream of both.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.sources.pds import emulator_data as pds_data
from tests.support.emulator_control import reset_emulator, upstream_requests
from tests.support.mongo import MongoTarget
from tests.support.servers import Emulator, FHIRClient, running_facade
from tests.support.tokens import bearer, token

pytestmark = pytest.mark.mongo

SMITHS = "/Patient?family=Sm&birthdate=2010"  # three matches in the emulator
JANE = "9000000009"


@contextlib.asynccontextmanager
async def two_facades(
    emulator: Emulator, http: aiohttp.ClientSession, target: MongoTarget, **overrides: Any
) -> AsyncIterator[tuple[FHIRClient, FHIRClient]]:
    settings = {"mongodb_uri": target.uri, "mongodb_database": target.database, **overrides}
    async with running_facade(emulator, **settings) as a, running_facade(emulator, **settings) as b:
        yield FHIRClient(a, http), FHIRClient(b, http)


def next_link(bundle: dict[str, Any]) -> str:
    return next(link["url"] for link in bundle["link"] if link["relation"] == "next")


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


async def test_a_page_link_from_one_facade_is_served_by_the_other(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with two_facades(emulator, http, mongo_db) as (a, b):
        status, _, first = await a.get(SMITHS + "&_count=1")
        assert status == 200 and first["total"] == 3
        link = next_link(first)
        assert link.startswith(a.base_url)
        calls = (await upstream_requests(http, emulator))["total"]

        status, _, second = await b.get(link.removeprefix(a.base_url))
        assert status == 200 and second["total"] == 3 and len(ids(second)) == 1
        assert ids(second) != ids(first)
        status, _, third = await b.get(next_link(second).removeprefix(b.base_url))
        assert status == 200 and len({*ids(first), *ids(second), *ids(third)}) == 3
        assert (await upstream_requests(http, emulator))["total"] == calls  # pages never re-ask PDS

        # Still bound to its owner on the other worker: another user gets no data.
        other = bearer(token(subject="someone-else"))
        status, _, _ = await b.get(link.removeprefix(a.base_url), headers=other)
        assert status == 404
        status, _, _ = await b.get("/Patient?_getpages=never-made&_offset=1&_count=1")
        assert status == 410


def restrict_jane(monkeypatch: pytest.MonkeyPatch) -> None:
    """PDS now flags the patient restricted and withholds location data."""
    restricted = copy.deepcopy(pds_data.PATIENTS[JANE])
    restricted["meta"] = {
        **restricted["meta"],
        "versionId": "3",
        "security": [{"system": pds_data.CONF, "code": "R", "display": "restricted"}],
    }
    for name in ("address", "telecom", "generalPractitioner", "extension"):
        restricted.pop(name)
    monkeypatch.setitem(pds_data.PATIENTS, JANE, restricted)


async def test_a_restricted_patient_purge_through_one_facade_is_seen_by_the_other(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_facades(emulator, http, mongo_db, cache_enabled=True) as (a, b):
        _, h, before = await b.get(f"/Patient/{JANE}")
        assert h["X-Cache"] == "MISS" and before["address"]
        _, h, _ = await b.get(SMITHS)
        assert h["X-Cache"] == "MISS"
        _, h, _ = await a.get(f"/Patient/{JANE}")
        assert h["X-Cache"] == "HIT"  # one cache: B's entry, served by A

        restrict_jane(monkeypatch)
        _, h, after = await a.get(f"/Patient/{JANE}", headers={"Cache-Control": "no-cache"})
        assert h["X-Cache"] == "REVALIDATED" and "address" not in after  # A purged every copy

        _, h, read = await b.get(f"/Patient/{JANE}")
        assert h["X-Cache"] == "HIT" and "address" not in read and "telecom" not in read  # A's new copy
        _, h, bundle = await b.get(SMITHS)
        assert h["X-Cache"] == "MISS"  # B's cached search that held the old copy is gone
        jane = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == JANE)
        assert "address" not in jane and "telecom" not in jane


async def test_a_purge_through_one_facade_reaches_the_others_near_copies_within_the_bound(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    near = 0.5  # FACADE_CACHE_NEAR_SECONDS: the stated bound
    async with two_facades(emulator, http, mongo_db, cache_enabled=True, cache_near_seconds=near) as (a, b):
        await b.get(f"/Patient/{JANE}")  # MISS: written to MongoDB
        _, h, held = await b.get(f"/Patient/{JANE}")
        assert h["X-Cache"] == "HIT" and held["address"]  # and now B's near copy
        restrict_jane(monkeypatch)
        _, h, after = await a.get(f"/Patient/{JANE}", headers={"Cache-Control": "no-cache"})
        assert h["X-Cache"] == "REVALIDATED" and "address" not in after  # A purged every copy in MongoDB
        await asyncio.sleep(near + 0.05)
        _, h, read = await b.get(f"/Patient/{JANE}")
        assert "address" not in read and "telecom" not in read  # B's copy lapsed: A's new one
        _, h, again = await a.get(f"/Patient/{JANE}")
        assert h["X-Cache"] == "HIT" and "address" not in again


async def test_twenty_uncached_pds_reads_over_both_facades_keep_to_5_per_second(
    emulator: Emulator, http: aiohttp.ClientSession, mongo_db: MongoTarget
) -> None:
    async with two_facades(emulator, http, mongo_db, upstream_rate_limits={"PDS": 5}, upstream_single_flight=False) as (
        a,
        b,
    ):
        await a.get(f"/Patient/{JANE}")  # warm both (connections, token), then count from zero
        await b.get(f"/Patient/{JANE}")
        await asyncio.sleep(0.25)  # past the warm-up's slot
        await reset_emulator(http, emulator)
        answers = await asyncio.gather(*(f.get(f"/Patient/{JANE}") for _ in range(10) for f in (a, b)))
        assert [status for status, _, _ in answers] == [200] * 20
        seen = await upstream_requests(http, emulator)
        arrivals = sorted(seen["arrivals"])
        assert seen["counts"] == {f"GET /personal-demographics/FHIR/R4/Patient/{JANE}": 20}
        # 5/s for the deployment, burst 1: the 20 arrive at least 19 intervals of 200 ms apart in all
        # (two processes each limiting itself to 5/s would take half that).
        assert arrivals[-1] - arrivals[0] >= 19 / 5 - 0.15
        gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
        assert min(gaps) > 0.1  # evenly spaced, never two at once
