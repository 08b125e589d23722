"""How much the bounded concurrent detail fetch saves on a MedicationRequest search.

Runs the façade against the CPT emulator with each prescription-details call delayed
(as a slow upstream would be), once with FACADE_CPT_DETAIL_CONCURRENCY=1 (sequential)
and once with the default 4, and prints the median search times side by side. Searches
carry the benchmark's bearer token to a façade that trusts it (bench/facade_access.py).
Run: PYTHONPATH=. python bench/cpt_detail_fanout.py [delay_seconds] [rounds]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import aiohttp

from bench.facade_access import NO_CALLER_QUOTA
from tests.support.servers import running_emulator, running_facade
from tests.support.tokens import bearer

HEADERS = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
}
DETAILS_PER_SEARCH = 3  # 9000000009: one acute + two eRD issues


async def timed_searches(concurrency: int, delay: float, rounds: int) -> list[float]:
    times = []
    headers = {**HEADERS, **bearer()}
    async with (
        running_emulator() as emu,
        running_facade(emu, cpt_detail_concurrency=concurrency, **NO_CALLER_QUOTA) as url,
        aiohttp.ClientSession() as http,
    ):
        for _ in range(rounds):
            async with http.post(
                f"{emu.url}/_control/faults",
                json={
                    "path_prefix": "/clinical-prescription-tracker/RequestGroup/",
                    "delay": delay,
                    "times": DETAILS_PER_SEARCH,
                },
            ) as resp:
                assert resp.status == 200
            start = time.perf_counter()
            async with http.get(f"{url}/MedicationRequest?patient=9000000009", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            times.append(time.perf_counter() - start)
    return times


async def main() -> None:
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    sequential = statistics.median(await timed_searches(1, delay, rounds))
    bounded = statistics.median(await timed_searches(4, delay, rounds))
    print(f"detail delay {delay * 1000:.0f} ms, {DETAILS_PER_SEARCH} detail calls per search, {rounds} rounds")
    print(
        f"concurrency 1: {sequential * 1000:7.1f} ms   concurrency 4: {bounded * 1000:7.1f} ms   "
        f"ratio {sequential / bounded:.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
