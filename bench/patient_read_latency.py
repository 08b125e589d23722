"""Patient read latency: the façade versus a direct read from the emulator it fronts.

Starts the NHS emulator and the façade on loopback ports (the same helpers as the
integration tests), makes N sequential reads of one Patient through each, and prints
median / p90 / p99 side by side with the façade's added cost. Not a test: nothing is
asserted; run it and read the figures.

The façade runs as the integration tests run it (bench/facade_access.py): every read
through it carries the benchmark's bearer token, which it verifies, and is audited (in
memory); the relationship check and the per-caller NHS quota are off, since this measures
speed. The added cost therefore includes token verification, printed alone for scale. The
direct reads carry no token, as the façade's own PDS calls carry none in sandbox mode.

    python bench/patient_read_latency.py [--reads 300] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.facade_access import NO_CALLER_QUOTA, verification_us
from tests.support.servers import running_emulator, running_facade
from tests.support.tokens import bearer

NHS_NUMBER = "9000000009"


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def timed(reads: int, warmup: int, one: Callable[[], Awaitable[None]]) -> list[float]:
    for _ in range(warmup):
        await one()
    samples = []
    for _ in range(reads):
        start = time.perf_counter()
        await one()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def main(reads: int, warmup: int) -> None:
    logging.disable(logging.INFO)  # the access log would dominate the figures
    async with (
        running_emulator() as emulator,
        running_facade(emulator, **NO_CALLER_QUOTA) as facade_url,
        aiohttp.ClientSession() as http,
    ):

        async def via_facade() -> None:
            async with http.get(f"{facade_url}/Patient/{NHS_NUMBER}", headers=bearer()) as resp:
                await resp.read()
                assert resp.status == 200, resp.status

        async def direct() -> None:
            async with http.get(
                f"{emulator.pds_url}/Patient/{NHS_NUMBER}", headers={"X-Request-ID": str(uuid.uuid4())}
            ) as resp:
                await resp.read()
                assert resp.status == 200, resp.status

        # Interleave the two series in blocks so machine noise hits both alike.
        facade_ms: list[float] = []
        direct_ms: list[float] = []
        block = max(1, reads // 10)
        done = 0
        while done < reads:
            n = min(block, reads - done)
            direct_ms += await timed(n, warmup if done == 0 else 0, direct)
            facade_ms += await timed(n, warmup if done == 0 else 0, via_facade)
            done += n

    rows = [("median", 50.0), ("p90", 90.0), ("p99", 99.0)]
    print(f"Patient read latency, {reads} sequential reads each (ms)")
    print(f"{'':8}{'facade':>10}{'direct':>10}{'added':>10}{'ratio':>8}")
    for label, p in rows:
        f, d = percentile(facade_ms, p), percentile(direct_ms, p)
        print(f"{label:8}{f:10.3f}{d:10.3f}{f - d:10.3f}{f / d:8.2f}")
    print(
        f"{'mean':8}{statistics.fmean(facade_ms):10.3f}{statistics.fmean(direct_ms):10.3f}"
        f"{statistics.fmean(facade_ms) - statistics.fmean(direct_ms):10.3f}"
        f"{statistics.fmean(facade_ms) / statistics.fmean(direct_ms):8.2f}"
    )
    print(f"of the added cost, token verification alone (RS256, in process): {await verification_us() / 1000:.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.reads, args.warmup))
