"""Cache benchmark: cached reads and misses through the façade against a floor, side by side.

Starts, each as its own process on loopback: SecantusDB (or uses FACADE_MONGODB_URI), the
NHS emulator (with extra synthetic patients so every miss is a real miss), the façade
(`nhs-fhir-facade serve` with the MongoDB store) and a bare Starlette+Hypercorn app that
returns the same bytes as a cached read (the floor). Then, at 32 concurrent connections:

    floor           GET of the bare app
    cached read     GET /Patient/{id} answered from the cache (X-Cache: HIT)
    miss            GET /Patient/{id} of a patient not yet cached (cache lookup, PDS call, write)
    direct          GET of the same kind of patient straight from the emulator

and, one request at a time, the miss and the direct call again (the latency the façade adds).
Prints req/s, p50 and p99 and the ratios; asserts nothing (targets: cached >= 0.7 x floor,
miss median overhead over direct <= 2 ms).

    python bench/cache_bench.py [--seconds 5] [--store mongodb|memory]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONNECTIONS = 32
HOT_ID = "9000000009"
PDS = "personal-demographics/FHIR/R4"


# ---- child processes ---------------------------------------------------------------------

def synthetic_nhs_numbers(count: int) -> list[str]:
    """Valid (Modulus-11) NHS numbers in the 97xxxxxxxx test range, none of the emulator's."""
    out = []
    n = 0
    while len(out) < count:
        body = f"97{n:07d}"
        n += 1
        total = sum(int(d) * (10 - i) for i, d in enumerate(body))
        check = 11 - total % 11
        if check == 10:
            continue
        out.append(body + str(0 if check == 11 else check))
    return out


def serve_emulator(port: int, extra: int) -> None:
    """The project's emulator plus `extra` synthetic patients cloned from the full record."""
    import copy

    from server.__main__ import _serve_forever
    from server.sandbox import pds_data
    from server.sandbox.app import create_emulator_app

    template = pds_data.PATIENTS[HOT_ID]
    for nhs in synthetic_nhs_numbers(extra):
        clone = copy.deepcopy(template)
        clone["id"] = nhs
        clone["identifier"][0]["value"] = nhs
        pds_data.PATIENTS[nhs] = clone
    asyncio.run(_serve_forever(create_emulator_app(), f"127.0.0.1:{port}"))


def serve_floor(port: int, body_file: str) -> None:
    """Starlette + Hypercorn returning fixed bytes: what any Python HTTP answer costs here."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from server.__main__ import _serve_forever

    body = Path(body_file).read_bytes()

    async def patient(request: object) -> Response:
        return Response(body, media_type="application/fhir+json; charset=utf-8", headers={"ETag": 'W/"2"'})

    app = Starlette(routes=[Route("/Patient/{id}", patient)])
    asyncio.run(_serve_forever(app, f"127.0.0.1:{port}"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    await resp.read()
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} never answered") from None
                await asyncio.sleep(0.1)


@contextlib.contextmanager
def mongodb() -> Iterator[str]:
    if os.environ.get("FACADE_MONGODB_URI"):
        yield os.environ["FACADE_MONGODB_URI"]
        return
    from tests.support.mongo import SecantusProcess

    server = SecantusProcess()
    try:
        yield server.start()
    finally:
        server.stop()


# ---- load --------------------------------------------------------------------------------

@dataclass
class Figures:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def load(name: str, urls: Iterator[str], seconds: float, connections: int,
               headers_for: dict[str, str] | None = None, expect_cache: str | None = None) -> Figures:
    """`connections` workers, each on its own keep-alive connection, for `seconds`."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for url in urls:
                if time.perf_counter() >= stop_at:
                    return
                headers = {"X-Request-ID": str(uuid.uuid4()), **(headers_for or {})}
                start = time.perf_counter()
                async with http.get(url, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200 or (expect_cache and resp.headers.get("X-Cache") != expect_cache):
                        raise RuntimeError(f"{name}: {resp.status} X-Cache={resp.headers.get('X-Cache')}")
                latencies.append((time.perf_counter() - start) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    return Figures(name, len(latencies), elapsed, latencies)


def repeat(url: str) -> Iterator[str]:
    while True:
        yield url


def each(base: str, ids: Iterator[str]) -> Iterator[str]:
    for nhs in ids:
        yield f"{base}/Patient/{nhs}"


def report(rows: list[Figures], floor: Figures) -> None:
    print(f"\n{'':28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'x floor':>9}")
    for row in rows:
        print(f"{row.name:28}{row.rps:9.0f}{row.pct(50):9.2f}{row.pct(99):9.2f}{row.rps / floor.rps:9.2f}")


async def run(seconds: float, store: str) -> None:
    ids = iter(synthetic_nhs_numbers(60_000))
    emulator_port, facade_port, floor_port = free_port(), free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    facade_url = f"http://127.0.0.1:{facade_port}"
    floor_url = f"http://127.0.0.1:{floor_port}"
    with contextlib.ExitStack() as stack:
        env = {"FACADE_PORT": str(facade_port), "FACADE_HOST": "127.0.0.1", "FACADE_LOG_LEVEL": "WARNING",
               "FACADE_PDS_BASE_URL": f"{emulator_url}/{PDS}", "FACADE_CACHE_ENABLED": "true"}
        if store == "mongodb":
            env["FACADE_MONGODB_URI"] = stack.enter_context(mongodb())
            env["FACADE_MONGODB_DATABASE"] = f"bench_{uuid.uuid4().hex[:8]}"
        stack.enter_context(child([__file__, "--serve-emulator", str(emulator_port)]))
        stack.enter_context(child(["-m", "server", "serve"], env))
        await wait_ready(f"{emulator_url}/_control/requests")
        await wait_ready(f"{facade_url}/_health")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{facade_url}/Patient/{HOT_ID}") as resp:
                body = await resp.read()
            async with http.get(f"{facade_url}/_health") as resp:
                health = await resp.json()
        body_file = REPO / ".bench-floor-body.json"
        body_file.write_bytes(body)
        stack.callback(body_file.unlink)
        stack.enter_context(child([__file__, "--serve-floor", str(floor_port), str(body_file)]))
        await wait_ready(f"{floor_url}/Patient/{HOT_ID}")
        print(f"cache backend: {health['cache']['backend']} ({health['cache']['status']}); "
              f"{CONNECTIONS} connections, {seconds:.0f} s per phase; body {len(body)} bytes")

        warm = min(1.0, seconds / 5)
        await load("warm-up", repeat(f"{floor_url}/Patient/{HOT_ID}"), warm, CONNECTIONS)
        floor = await load("floor (Starlette+Hypercorn)", repeat(f"{floor_url}/Patient/{HOT_ID}"), seconds,
                           CONNECTIONS)
        await load("warm-up", repeat(f"{facade_url}/Patient/{HOT_ID}"), warm, CONNECTIONS)
        hit = await load("cached read (HIT)", repeat(f"{facade_url}/Patient/{HOT_ID}"), seconds, CONNECTIONS,
                         expect_cache="HIT")
        miss = await load("miss via emulator (MISS)", each(facade_url, ids), seconds, CONNECTIONS,
                          expect_cache="MISS")
        direct = await load("direct emulator call", each(f"{emulator_url}/{PDS}", ids), seconds, CONNECTIONS)
        report([floor, hit, miss, direct], floor)
        print(f"\ncached read / floor (req/s):         {hit.rps / floor.rps:.2f}   (target >= 0.7)")
        print(f"miss p50 - direct p50, 32 conns:     {miss.pct(50) - direct.pct(50):.2f} ms")

        miss1 = await load("miss, 1 connection", each(facade_url, ids), seconds / 2, 1, expect_cache="MISS")
        direct1 = await load("direct, 1 connection", each(f"{emulator_url}/{PDS}", ids), seconds / 2, 1)
        report([miss1, direct1], floor)
        print(f"\nmiss overhead over direct, median:   {miss1.pct(50) - direct1.pct(50):.2f} ms   (target <= 2 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured phase")
    parser.add_argument("--store", choices=("mongodb", "memory"), default="mongodb")
    parser.add_argument("--serve-emulator", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", nargs=2, metavar=("PORT", "BODY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator(args.serve_emulator, extra=60_000)
    elif args.serve_floor:
        serve_floor(int(args.serve_floor[0]), args.serve_floor[1])
    else:
        asyncio.run(run(args.seconds, args.store))


if __name__ == "__main__":
    main()
