"""Measure single-flight: N concurrent identical Patient reads, with and without it.

Real sockets: the façade on loopback in front of the project's emulator, which answers
with an injected delay standing in for NHS latency. Prints, side by side, how many
requests reached the emulator (NHS load) and the latency the clients saw.

Every read carries the benchmark's bearer token (FHIRClient sends the test token) to a
façade that trusts it, as the integration tests run it (bench/facade_access.py). The
per-caller NHS quota is lifted in both scenarios: the N identical reads stand in for many
clinicians, whose quotas are separate, and one token's quota would refuse the reads that
single-flight off sends upstream, measuring the quota instead.

    PYTHONPATH=. /work/venv/bin/python bench/single_flight.py [--n 50] [--latency 0.1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.facade_access import NO_CALLER_QUOTA
from tests.support.servers import Emulator, FHIRClient, running_emulator, running_facade

PATH = "/Patient/9000000009"


@dataclass
class Row:
    label: str
    upstream: float
    ok: float
    p50: float
    p95: float
    worst: float
    wall: float


async def one_round(
    facade: FHIRClient, http: aiohttp.ClientSession, emulator: Emulator, n: int, latency: float
) -> tuple[int, int, list[float], float]:
    async with http.post(f"{emulator.url}/_control/reset"):
        pass
    async with http.post(
        f"{emulator.url}/_control/faults", json={"path_prefix": "/personal-demographics", "delay": latency, "times": -1}
    ):
        pass

    async def timed() -> tuple[int, float]:
        start = time.perf_counter()
        status, _, _ = await facade.get(PATH)
        return status, time.perf_counter() - start

    start = time.perf_counter()
    results = await asyncio.gather(*(timed() for _ in range(n)))
    wall = time.perf_counter() - start
    async with http.get(f"{emulator.url}/_control/requests") as resp:
        upstream = (await resp.json())["total"]
    return upstream, sum(1 for s, _ in results if s == 200), [t for _, t in results], wall


async def measure(label: str, n: int, latency: float, rounds: int, **settings: Any) -> Row:
    upstreams, oks, latencies, walls = [], [], [], []
    async with running_emulator() as emulator, aiohttp.ClientSession() as http:
        async with running_facade(emulator, **settings) as url:
            facade = FHIRClient(url, http)
            await facade.get(PATH)  # warm the connection pools
            for _ in range(rounds):
                up, ok, lat, wall = await one_round(facade, http, emulator, n, latency)
                upstreams.append(up)
                oks.append(ok)
                latencies.extend(lat)
                walls.append(wall)
    latencies.sort()
    return Row(
        label,
        statistics.mean(upstreams),
        statistics.mean(oks),
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.95) - 1] * 1000,
        latencies[-1] * 1000,
        statistics.mean(walls) * 1000,
    )


def show(title: str, with_sf: Row, without: Row, n: int) -> None:
    print(f"\n{title}")
    print(f"{'':24}{'upstream calls':>15}{'200s':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'wall ms':>9}")
    for row in (without, with_sf):
        print(
            f"{row.label:24}{row.upstream:>15.1f}{row.ok:>7.1f}{row.p50:>9.0f}{row.p95:>9.0f}"
            f"{row.worst:>9.0f}{row.wall:>9.0f}"
        )
    print(
        f"{'ratio off/on':24}{without.upstream / with_sf.upstream:>14.1f}x{'':7}"
        f"{without.p50 / with_sf.p50:>8.2f}x{without.p95 / with_sf.p95:>8.2f}x{'':9}{without.wall / with_sf.wall:>8.2f}x"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="concurrent identical reads per round")
    parser.add_argument("--latency", type=float, default=0.1, help="emulated NHS latency, seconds")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{args.n} concurrent identical GET {PATH}, emulated NHS latency {args.latency * 1000:.0f} ms, "
        f"{args.rounds} rounds (means per round; latency percentiles over all requests)"
    )

    common: dict[str, Any] = dict(upstream_concurrency=20, **NO_CALLER_QUOTA)
    for title, extra in (
        ("A. no client-side rate limit, 20 upstream connections per API", {"upstream_rate_limits": {}}),
        ("B. production default: PDS limited to 5 requests/s, 15 s budget", {"upstream_rate_limits": {"PDS": 5}}),
    ):
        with_sf = await measure(
            "single-flight on", args.n, args.latency, args.rounds, upstream_single_flight=True, **common, **extra
        )
        without = await measure(
            "single-flight off", args.n, args.latency, args.rounds, upstream_single_flight=False, **common, **extra
        )
        show(title, with_sf, without, args.n)


if __name__ == "__main__":
    asyncio.run(main())
