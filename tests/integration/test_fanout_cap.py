"""Over real sockets: a search page starts at most FACADE_MAX_REVINCLUDE_SEARCHES reverse
searches and FACADE_MAX_INCLUDE_READS include reads; the emulator counts what NHS would
have received, and what was left out is one warning in the searchset."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import reset_emulator, upstream_counts
from tests.support.servers import Emulator, running_facade

TWO_SMITHS = "family=Smi&birthdate=ge2000"  # 9000000009 and 9000000092 in the PDS emulator
REVS = "&_revinclude=AllergyIntolerance:patient&_revinclude=ServiceRequest:patient"


def by_mode(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def too_costly(bundle: dict[str, Any]) -> list[str]:
    return [i["diagnostics"] for r in by_mode(bundle, "outcome") for i in r["issue"] if i["code"] == "too-costly"]


def calls(counts: dict[str, int], marker: str) -> int:
    return sum(n for key, n in counts.items() if marker in key)


async def test_rev_include_searches_over_the_cap_are_not_sent(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator) as url:  # default cap (10): all four reverse searches run
        answer = await CheckedClient(url, http).get(f"/Patient?{TWO_SMITHS}{REVS}")
    assert answer.status == 200, answer.body
    counts = await upstream_counts(http, emulator)
    uncapped = calls(counts, "gpc.getstructuredrecord") + calls(counts, "/ServiceRequest")
    assert uncapped == 4 and too_costly(answer.body) == []

    await reset_emulator(http, emulator)
    async with running_facade(emulator, max_revinclude_searches=3) as url:
        answer = await CheckedClient(url, http).get(f"/Patient?{TWO_SMITHS}{REVS}")
    assert answer.status == 200, answer.body
    counts = await upstream_counts(http, emulator)
    assert calls(counts, "gpc.getstructuredrecord") + calls(counts, "/ServiceRequest") == 3
    assert calls(counts, "/Patient?") == 1  # the search itself
    [warning] = too_costly(answer.body)
    assert "1 reverse search(es) not run" in warning and "Patient/9000000092" in warning
    assert "FACADE_MAX_REVINCLUDE_SEARCHES" in warning
    # the first match is complete: its allergies and referrals are there
    included = by_mode(answer.body, "include")
    assert {r["resourceType"] for r in included} == {"AllergyIntolerance", "ServiceRequest"}


async def test_include_reads_over_the_cap_are_not_sent(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, max_include_reads=0) as url:
        answer = await CheckedClient(url, http).get(
            "/AllergyIntolerance?patient=9000000009&_include=AllergyIntolerance:patient"
        )
    assert answer.status == 200, answer.body
    assert by_mode(answer.body, "match") and by_mode(answer.body, "include") == []
    counts = await upstream_counts(http, emulator)
    assert calls(counts, "/personal-demographics/") == 0 and calls(counts, "gpc.getstructuredrecord") == 1
    [warning] = too_costly(answer.body)
    assert "1 referenced resource(s) not read (Patient/9000000009)" in warning
