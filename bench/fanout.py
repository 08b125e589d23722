"""Clinician-view fan-out: the three requests a clinician view of one patient makes, one
after another vs all at once, with the cache off and on, side by side.

Starts the façade in sandbox mode (no upstream URL set: the embedded emulator answers as
the NHS APIs), once with the cache off and once with the in-memory cache, each as its own
process on loopback. One round is the three requests for patient 9000000009:

    GET /Patient/9000000009                          PDS
    GET /MedicationRequest?patient=9000000009        Prescription Tracker (user-restricted:
                                                     the NHS session headers are sent)
    GET /AllergyIntolerance?patient=9000000009       GP Connect

sent sequentially, then concurrently (asyncio.gather), alternating round by round so load
from other processes hits both alike. With the cache on, a first round fills the cache and
is left out: every measured request is checked to be an X-Cache HIT. Prints median and p90
of the round latency (and each request's median when sent alone). The client-side PDS
limit (5 req/s, an NHS quota) and the per-caller NHS quota are lifted: they would measure
the quota, not the façade. Every request carries the benchmark's bearer token, which the
façade verifies, and is audited (in memory), as the integration tests run it
(bench/facade_access.py). Asserts nothing.

Reading the figures: in sandbox mode the emulator runs in the façade's own event loop, so
"NHS time" here is CPU on the same core, which asyncio.gather cannot overlap; against the
real NHS APIs most of a call is waiting on the network, which it does overlap.

    python bench/fanout.py [--rounds 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cache_bench import child, free_port, load_average, wait_ready  # noqa: E402
from bench.facade_access import facade_env  # noqa: E402
from tests.support.tokens import bearer  # noqa: E402

NHS_NUMBER = "9000000009"
SESSION_HEADERS = {
    "nhsd-session-urid": "555254242106",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "R8000",
}
VIEW = (
    ("Patient read", f"/Patient/{NHS_NUMBER}"),
    ("MedicationRequest search", f"/MedicationRequest?patient={NHS_NUMBER}"),
    ("AllergyIntolerance search", f"/AllergyIntolerance?patient={NHS_NUMBER}"),
)


@dataclass
class Series:
    rounds_ms: list[float] = field(default_factory=list)
    per_request_ms: dict[str, list[float]] = field(default_factory=dict)

    def pct(self, p: float) -> float:
        ordered = sorted(self.rounds_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def fetch(
    http: aiohttp.ClientSession,
    base: str,
    name: str,
    path: str,
    expect_cache: str | None,
    timings: dict[str, list[float]] | None = None,
) -> None:
    start = time.perf_counter()
    headers = {**SESSION_HEADERS, **bearer(), "X-Request-ID": str(uuid.uuid4())}
    async with http.get(base + path, headers=headers) as resp:
        await resp.read()
        if resp.status != 200 or (expect_cache and resp.headers.get("X-Cache") != expect_cache):
            raise RuntimeError(f"{name}: {resp.status} X-Cache={resp.headers.get('X-Cache')}")
    if timings is not None:
        timings.setdefault(name, []).append((time.perf_counter() - start) * 1000)


async def sequential(http: aiohttp.ClientSession, base: str, expect_cache: str | None, into: Series) -> None:
    start = time.perf_counter()
    for name, path in VIEW:
        await fetch(http, base, name, path, expect_cache, into.per_request_ms)
    into.rounds_ms.append((time.perf_counter() - start) * 1000)


async def concurrent(http: aiohttp.ClientSession, base: str, expect_cache: str | None, into: Series) -> None:
    start = time.perf_counter()
    await asyncio.gather(*(fetch(http, base, name, path, expect_cache) for name, path in VIEW))
    into.rounds_ms.append((time.perf_counter() - start) * 1000)


@contextlib.contextmanager
def facade(cache: bool) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "FACADE_PORT": str(port),
        "FACADE_HOST": "127.0.0.1",
        "FACADE_LOG_LEVEL": "WARNING",
        "FACADE_CACHE_ENABLED": str(cache).lower(),
        "FACADE_UPSTREAM_RATE_LIMITS": "{}",
        **facade_env(base),
    }
    with child(["-m", "server", "serve"], env):
        yield base


async def measure(base: str, rounds: int, cached: bool) -> tuple[Series, Series, float | None]:
    """Sequential and concurrent series; with the cache, the latency of the round that filled it."""
    await wait_ready(f"{base}/_health")
    seq, conc = Series(), Series()
    expect = "HIT" if cached else None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=10)) as http:
        filling = None
        if cached:
            fill = Series()
            await sequential(http, base, "MISS", fill)
            filling = fill.rounds_ms[0]
        for _ in range(3):  # warm-up: connections, first-use imports
            await sequential(http, base, expect, Series())
            await concurrent(http, base, expect, Series())
        for _ in range(rounds):
            await sequential(http, base, expect, seq)
            await concurrent(http, base, expect, conc)
    return seq, conc, filling


def report(off: tuple[Series, Series], on: tuple[Series, Series], rounds: int) -> None:
    print(f"\nround latency, ms ({rounds} rounds each)   {'cache off':>20}{'cache on (HIT)':>22}")
    print(f"{'':38}{'median':>10}{'p90':>10}{'median':>11}{'p90':>11}")
    for label, index in (("sequential (one after another)", 0), ("concurrent (asyncio.gather)", 1)):
        a, b = off[index], on[index]
        print(f"{label:38}{a.pct(50):10.2f}{a.pct(90):10.2f}{b.pct(50):11.2f}{b.pct(90):11.2f}")
    ratio_off = off[1].pct(50) / off[0].pct(50)
    ratio_on = on[1].pct(50) / on[0].pct(50)
    print(f"{'concurrent / sequential (median)':38}{ratio_off:10.2f}{'':10}{ratio_on:11.2f}")
    print(f"\neach request alone (sequential rounds), median ms {'cache off':>12}{'cache on':>11}")
    for name, _ in VIEW:
        print(
            f"  {name:48}{statistics.median(off[0].per_request_ms[name]):12.2f}"
            f"{statistics.median(on[0].per_request_ms[name]):11.2f}"
        )


async def run(rounds: int) -> None:
    print(f"load average at start: {load_average()}; façade in sandbox mode (embedded emulator), patient {NHS_NUMBER}")
    with facade(cache=False) as base:
        seq_off, conc_off, _ = await measure(base, rounds, cached=False)
    with facade(cache=True) as base:
        seq_on, conc_on, filling = await measure(base, rounds, cached=True)
    report((seq_off, conc_off), (seq_on, conc_on), rounds)
    if filling is not None:
        print(f"\nfirst round with the cache on (three MISSes, sequential): {filling:.2f} ms")
    print(f"load average at end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100, help="measured rounds of each kind")
    args = parser.parse_args()
    asyncio.run(run(args.rounds))


if __name__ == "__main__":
    main()
