"""Cache benchmark: cached reads and misses through the façade against a floor, side by side.

Starts, each as its own process on loopback: SecantusDB (or uses FACADE_MONGODB_URI), the
NHS emulator (with extra synthetic patients so every miss is a real miss), the façade
(`nhs-fhir-facade serve`: one Granian worker, with the MongoDB or memory store) and a bare
Starlette app that returns the same bytes as a cached read: the same body and the same
response headers (ETag, Last-Modified, X-Cache, Age, X-Request-ID echoed). That is the
floor: what any Python HTTP answer of this response costs here. It runs twice, on the
server the façade runs on (Granian, one worker, as `serve` configures it) and on Hypercorn
(the façade's server before Granian), and both are measured in the same run. Then, at 32
concurrent connections:

    floor           GET of the bare app (Granian, then Hypercorn)
    cached read     GET /Patient/{id} answered from the cache (X-Cache: HIT)
    miss            GET /Patient/{id} of a patient not yet cached (cache lookup, PDS call, write)
    direct          GET of the same kind of patient straight from the emulator

and, one request at a time, the miss and the direct call again (the latency the façade adds).

Fairness: both sides of each comparison get identical requests from one client (aiohttp's
default headers, Accept-Encoding: gzip included, plus an X-Request-ID), and are measured in
alternating slices (`--rounds` of each), so load from other processes on the machine hits
both alike. The floor and the façade both get the same bearer token (bench/facade_access.py);
the floor ignores it, the façade authenticates it, decides access and writes an audit record on
every request (into MongoDB with the MongoDB store): that cost is part of what the cached
read measures. The RS256 verification of a token is printed for scale: the façade pays it
once per token (server/access/control.py keeps verified principals until the token expires),
so a cached read pays a digest and a dict look-up instead. The direct emulator
calls carry no token, as the façade's own PDS calls carry none in sandbox mode. The
client-side NHS limits (PDS 5 req/s, 20 in flight per API) and the per-caller NHS quota are
lifted: they protect NHS quotas and would measure the quota, not the façade. The façade logs
at its shipped level (INFO: one PHI-free access line per request) unless `--log-level` says
otherwise.

Prints req/s, p50 and p99, the ratios to both floors, the median of the per-slice ratios,
and on Linux the server CPU time per request of each serving process (a Granian server's
worker, not its idle main process; less sensitive to other load than req/s), and each
façade worker's resident memory. With the MongoDB store it then starts a second façade
with two Granian workers on the same database and measures cached reads on one worker
and on two side by side. Asserts nothing; the targets it prints beside the figures (issue
11): cached read >= 0.5 x the Granian floor with the memory store, >= 0.3 x with MongoDB;
miss overhead over a direct call <= 1 ms median at one connection; façade CPU <= 800 us
per miss; two workers >= 1.7 x one on the MongoDB store; RSS <= 150 MB per worker.

    python bench/cache_bench.py [--seconds 4] [--rounds 4] [--store mongodb|memory] [--log-level INFO]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.facade_access import facade_env, verification_us  # noqa: E402
from bench.process_stats import child, cpu_seconds, rss_mib, worker_pids  # noqa: E402
from tests.support.tokens import bearer  # noqa: E402

CONNECTIONS = 32
# The cached read's target, as a share of the Granian floor's req/s, per cache store.
HIT_TARGET = {"memory": 0.5, "mongodb": 0.3}
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
    from server.sandbox.app import create_emulator_app
    from server.sources.pds import emulator_data as pds_data

    template = pds_data.PATIENTS[HOT_ID]
    for nhs in synthetic_nhs_numbers(extra):
        clone = copy.deepcopy(template)
        clone["id"] = nhs
        clone["identifier"][0]["value"] = nhs
        pds_data.PATIENTS[nhs] = clone
    asyncio.run(_serve_forever(create_emulator_app(), f"127.0.0.1:{port}"))


FLOOR_SERVERS = ("granian", "hypercorn")
FLOOR_FILES = ("BENCH_FLOOR_BODY", "BENCH_FLOOR_HEADERS")  # environment: where floor_app reads its answer


def floor_app():
    """Starlette returning fixed bytes and headers: what any Python HTTP answer of this exact
    response costs here. A factory, so a Granian worker can build it (files named in the
    environment)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = Path(os.environ[FLOOR_FILES[0]]).read_bytes()
    fixed = json.loads(Path(os.environ[FLOOR_FILES[1]]).read_text())
    media_type = fixed.pop("content-type")

    async def patient(request: Request) -> Response:
        return Response(
            body, media_type=media_type, headers={**fixed, "x-request-id": request.headers.get("x-request-id", "-")}
        )

    return Starlette(routes=[Route("/Patient/{id}", patient)])


def serve_floor(server: str, port: int) -> None:
    """The floor on `server`, configured as the façade's: Granian as `serve` runs it (one
    worker), Hypercorn with the façade's former config."""
    from server.__main__ import _serve_forever, logging_config
    from server.serving import serve_workers

    if server == "granian":
        serve_workers(
            "bench.cache_bench:floor_app",
            host="127.0.0.1",
            port=port,
            workers=1,
            log_config=logging_config("WARNING"),
            log_level="warning",
        )
    else:
        asyncio.run(_serve_forever(floor_app(), f"127.0.0.1:{port}"))


# Response headers of a cached read the floor repeats (Hypercorn adds date and server to both).
FLOOR_HEADERS = ("content-type", "etag", "last-modified", "x-cache", "age")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    await resp.read()
                    return
            except (TimeoutError, aiohttp.ClientError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} never answered") from None
                await asyncio.sleep(0.1)


@contextlib.contextmanager
def mongodb() -> Iterator[tuple[str, int | None]]:
    """The MongoDB URI, and the server's pid when it is ours (SecantusDB), for its CPU time."""
    if os.environ.get("FACADE_MONGODB_URI"):
        yield os.environ["FACADE_MONGODB_URI"], None
        return
    from tests.support.mongo import SecantusProcess

    server = SecantusProcess()
    try:
        uri = server.start()
        yield uri, server.process.pid if server.process else None
    finally:
        server.stop()


# ---- load --------------------------------------------------------------------------------


def serving_pid(pid: int) -> int:
    """The process that answers requests: a Granian server's one worker (its main process
    only watches), else `pid` itself (Linux /proc; `pid` elsewhere)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if len(children) == 1 else pid


@dataclass
class Phase:
    """One kind of request, driven from its own client session (keep-alive connections)."""

    name: str
    urls: Iterator[str]
    connections: int
    expect_cache: str | None = None
    pids: tuple[int, ...] = ()  # server processes whose CPU time the requests cost
    headers: dict[str, str] = field(default_factory=dict)  # sent on every request, with an X-Request-ID


@dataclass
class Figures:
    name: str
    requests: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds spent in this phase

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def cpu_us(self, pid: int) -> float | None:
        return self.cpu[pid] / self.requests * 1e6 if pid in self.cpu and self.requests else None


async def load(phase: Phase, http: aiohttp.ClientSession, seconds: float, into: Figures) -> float:
    """`phase.connections` workers on keep-alive connections for `seconds`; adds to `into`
    and returns this slice's req/s."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    cpu_before = {pid: cpu_seconds(pid) for pid in phase.pids}

    async def worker() -> None:
        for url in phase.urls:
            if time.perf_counter() >= stop_at:
                return
            start = time.perf_counter()
            async with http.get(url, headers={**phase.headers, "X-Request-ID": str(uuid.uuid4())}) as resp:
                await resp.read()
                if resp.status != 200 or (phase.expect_cache and resp.headers.get("X-Cache") != phase.expect_cache):
                    raise RuntimeError(f"{phase.name}: {resp.status} X-Cache={resp.headers.get('X-Cache')}")
            latencies.append((time.perf_counter() - start) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(phase.connections)))
    elapsed = time.perf_counter() - began
    for pid, before in cpu_before.items():
        after = cpu_seconds(pid)
        if before is not None and after is not None:
            into.cpu[pid] = into.cpu.get(pid, 0.0) + after - before
    into.requests += len(latencies)
    into.seconds += elapsed
    into.latencies_ms += latencies
    return len(latencies) / elapsed


async def alternating(phases: list[Phase], seconds: float, rounds: int) -> tuple[list[Figures], list[list[float]]]:
    """`rounds` slices of each phase in turn, `seconds` in all for each; the figures, and per
    phase its per-slice req/s (to compare slices measured side by side)."""
    figures = [Figures(p.name) for p in phases]
    rates: list[list[float]] = [[] for _ in phases]
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(client(p.connections)) for p in phases]
        for _ in range(rounds):
            for phase, http, into, slices in zip(phases, sessions, figures, rates):
                slices.append(await load(phase, http, seconds / rounds, into))
    return figures, rates


async def side_by_side(a: Phase, b: Phase, seconds: float, rounds: int) -> tuple[Figures, Figures, list[float]]:
    """`rounds` alternating slices of a and b, `seconds` in all for each; per-slice b/a ratios."""
    (fa, fb), (ra, rb) = await alternating([a, b], seconds, rounds)
    return fa, fb, [y / x for x, y in zip(ra, rb)]


@contextlib.asynccontextmanager
async def client(connections: int) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
        yield http


def repeat(url: str) -> Iterator[str]:
    while True:
        yield url


def each(base: str, ids: Iterator[str]) -> Iterator[str]:
    for nhs in ids:
        yield f"{base}/Patient/{nhs}"


def report(rows: list[Figures], floors: dict[str, Figures], cpu_of: dict[str, int]) -> None:
    """One line per phase: req/s, latency, the ratio to each floor (one column per floor
    server), the CPU time per request of each named process."""
    print(
        f"\n{'':32}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        + "".join(f"{'x ' + name:>13}" for name in floors)
        + "".join(f"{'CPU us/req ' + name:>27}" for name in cpu_of)
    )
    for row in rows:
        ratios = "".join(f"{row.rps / floor.rps:13.2f}" for floor in floors.values())
        cpu = "".join(
            f"{row.cpu_us(pid):27.0f}" if row.cpu_us(pid) is not None else f"{'':27}" for pid in cpu_of.values()
        )
        print(f"{row.name:32}{row.rps:8.0f}{row.pct(50):9.2f}{row.pct(99):9.2f}{ratios}{cpu}")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


async def run(seconds: float, rounds: int, store: str, log_level: str) -> None:
    ids = iter(synthetic_nhs_numbers(60_000))
    emulator_port, facade_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"
    facade_url = f"http://127.0.0.1:{facade_port}"
    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)")
    with contextlib.ExitStack() as stack:
        env = {
            "FACADE_PORT": str(facade_port),
            "FACADE_HOST": "127.0.0.1",
            "FACADE_LOG_LEVEL": log_level,
            "FACADE_PDS_BASE_URL": f"{emulator_url}/{PDS}",
            "FACADE_CACHE_ENABLED": "true",
            "FACADE_UPSTREAM_RATE_LIMITS": "{}",
            "FACADE_UPSTREAM_CONCURRENCY": str(2 * CONNECTIONS),
            # As in live mode, where the console is off unless enabled: no per-request trace
            # (server/request_trace.py; about 11 us a request when the sandbox console is on).
            "FACADE_CONSOLE": "off",
            **facade_env(facade_url),
        }
        mongo_pid = None
        if store == "mongodb":
            env["FACADE_MONGODB_URI"], mongo_pid = stack.enter_context(mongodb())
            env["FACADE_MONGODB_DATABASE"] = f"bench_{uuid.uuid4().hex[:8]}"
        emulator = stack.enter_context(child([__file__, "--serve-emulator", str(emulator_port)]))
        facade = stack.enter_context(child(["-m", "server", "serve"], env))
        await wait_ready(f"{emulator_url}/_control/requests")
        await wait_ready(f"{facade_url}/_health")
        async with aiohttp.ClientSession(headers=bearer()) as http:
            async with http.get(f"{facade_url}/Patient/{HOT_ID}") as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"first façade read: {resp.status} {body[:300]!r}")
            async with http.get(f"{facade_url}/Patient/{HOT_ID}") as resp:  # now a HIT: copy its headers
                hit_headers = {name: resp.headers[name] for name in FLOOR_HEADERS if name in resp.headers}
                compressed = resp.headers.get("Content-Encoding", "identity")
            async with http.get(f"{facade_url}/_health") as resp:
                health = await resp.json()
        body_file, headers_file = REPO / ".bench-floor-body.json", REPO / ".bench-floor-headers.json"
        body_file.write_bytes(body)
        headers_file.write_text(json.dumps(hit_headers))
        stack.callback(body_file.unlink)
        stack.callback(headers_file.unlink)
        floor_env = dict(zip(FLOOR_FILES, (str(body_file), str(headers_file))))
        floor_urls, floor_pids = {}, {}
        for server in FLOOR_SERVERS:
            port = free_port()
            proc = stack.enter_context(child([__file__, "--serve-floor", server, str(port)], floor_env))
            floor_urls[server] = f"http://127.0.0.1:{port}"
            await wait_ready(f"{floor_urls[server]}/Patient/{HOT_ID}")
            floor_pids[server] = serving_pid(proc.pid)
        facade_pid = serving_pid(facade.pid)
        print(
            f"cache backend: {health['cache']['backend']} ({health['cache']['status']}); façade log level "
            f"{log_level}; {CONNECTIONS} connections; {seconds:.0f} s per phase in {rounds} alternating slices; "
            f"body {len(body)} bytes, Content-Encoding of a HIT to this client: {compressed}"
        )

        cpu_of = {"façade": facade_pid, "emulator": emulator.pid}
        if mongo_pid is not None:
            cpu_of["mongo"] = mongo_pid
        floor_phases = [
            Phase(
                f"floor (Starlette+{server.capitalize()})",
                repeat(f"{floor_urls[server]}/Patient/{HOT_ID}"),
                CONNECTIONS,
                pids=(floor_pids[server],),
                headers=bearer(),
            )  # the same request; not verified
            for server in FLOOR_SERVERS
        ]
        hit_phase = Phase(
            "cached read (HIT)",
            repeat(f"{facade_url}/Patient/{HOT_ID}"),
            CONNECTIONS,
            "HIT",
            pids=(facade_pid, *(p for p in [mongo_pid] if p)),
            headers=bearer(),
        )
        warm = min(1.0, seconds / 4)
        await alternating([*floor_phases, hit_phase], 2 * warm, 2)  # warm-up, discarded
        (*floor_figures, hit), rates = await alternating([*floor_phases, hit_phase], seconds, rounds)
        floors = dict(zip(FLOOR_SERVERS, floor_figures))
        cpu_of_floor = {f"floor {server}": floor_pids[server] for server in FLOOR_SERVERS}
        miss_phase = Phase(
            "miss via emulator (MISS)",
            each(facade_url, ids),
            CONNECTIONS,
            "MISS",
            pids=tuple(cpu_of.values()),
            headers=bearer(),
        )
        direct_phase = Phase(
            "direct emulator call", each(f"{emulator_url}/{PDS}", ids), CONNECTIONS, pids=(emulator.pid,)
        )
        miss, direct, _ = await side_by_side(miss_phase, direct_phase, seconds, rounds)
        report([*floor_figures, hit, miss, direct], floors, {**cpu_of_floor, **cpu_of})
        print()
        for server, floor_rates in zip(FLOOR_SERVERS, rates):
            slices = statistics.median(h / f for f, h in zip(floor_rates, rates[-1]))
            print(
                f"{'cached read / ' + server + ' floor (req/s):':42}{hit.rps / floors[server].rps:5.2f}   "
                f"(median of {rounds} slice ratios {slices:.2f})"
                + (f"   target >= {HIT_TARGET[store]}: the façade runs on Granian" if server == "granian" else "")
            )
        hit_cpu = hit.cpu_us(facade_pid)
        for server in FLOOR_SERVERS:
            floor_cpu = floors[server].cpu_us(floor_pids[server])
            if floor_cpu and hit_cpu:
                print(f"{server + ' floor / cached read (server CPU):':42}{floor_cpu / hit_cpu:5.2f}")
        print(
            f"token verification alone:            {await verification_us():.0f} us CPU per verification "
            f"(RS256, in this process; the façade pays it once per token, then looks the principal up)"
        )
        print(f"miss p50 - direct p50, 32 conns:     {miss.pct(50) - direct.pct(50):.2f} ms")

        miss1, direct1, _ = await side_by_side(
            Phase(
                "miss, 1 connection", each(facade_url, ids), 1, "MISS", pids=tuple(cpu_of.values()), headers=bearer()
            ),
            Phase("direct, 1 connection", each(f"{emulator_url}/{PDS}", ids), 1, pids=(emulator.pid,)),
            seconds / 2,
            rounds,
        )
        report([miss1, direct1], floors, cpu_of)
        print(f"\nmiss overhead over direct, median:   {miss1.pct(50) - direct1.pct(50):.2f} ms   (target <= 1 ms)")
        miss_cpu = miss1.cpu_us(facade_pid)
        if miss_cpu:
            print(f"façade CPU per miss, 1 connection:   {miss_cpu:.0f} us   (target <= 800 us)")
        rss = rss_mib(facade_pid)
        if rss:
            print(f"façade worker RSS:                   {rss:.0f} MiB   (target <= 150 MB)")
        if store == "mongodb":
            await scaling(stack, env, facade_url, hit_phase, seconds, rounds)
    print(f"load average at end: {load_average()}")


async def scaling(
    stack: contextlib.ExitStack, env: dict[str, str], one_worker_url: str, one: Phase, seconds: float, rounds: int
) -> None:
    """Cached reads on one Granian worker and on two (a second façade on the same MongoDB),
    measured in alternating slices at twice the connections, so that neither is short of
    requests in flight."""
    port = free_port()
    two_url = f"http://127.0.0.1:{port}"
    two = stack.enter_context(
        child(["-m", "server", "serve"], {**env, "FACADE_PORT": str(port), "FACADE_WORKERS": "2"})
    )
    await wait_ready(f"{two_url}/_health")
    await asyncio.sleep(1.0)  # both workers up
    workers = worker_pids(two.pid)
    async with aiohttp.ClientSession(headers=bearer()) as http:
        async with http.get(f"{two_url}/Patient/{HOT_ID}") as resp:  # the shared cache has it already
            await resp.read()
    phases = [
        Phase("cached read, 1 worker", repeat(f"{one_worker_url}/Patient/{HOT_ID}"), 2 * CONNECTIONS, "HIT",
              pids=one.pids, headers=bearer()),
        Phase("cached read, 2 workers", repeat(f"{two_url}/Patient/{HOT_ID}"), 2 * CONNECTIONS, "HIT",
              pids=tuple(workers), headers=bearer()),
    ]  # fmt: skip
    await alternating(phases, seconds / 2, 2)  # warm-up, discarded
    (single, double), _ = await alternating(phases, seconds, rounds)
    print()
    for figures in (single, double):
        print(
            f"{figures.name:30}{figures.rps:8.0f} req/s   p50 {figures.pct(50):6.2f} ms   p99 {figures.pct(99):6.2f} ms"
        )
    print(
        f"two workers / one worker (req/s):    {double.rps / single.rps:.2f}   (target >= 1.7; on {os.cpu_count()} "
        "cores shared with this client, MongoDB and the emulator)"
    )
    sizes = [f"{r:.0f}" for r in (rss_mib(pid) for pid in workers) if r]
    print(f"two-worker façade RSS per worker:    {', '.join(sizes)} MiB   (target <= 150 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each measured phase")
    parser.add_argument("--rounds", type=int, default=4, help="alternating slices per side-by-side comparison")
    parser.add_argument("--store", choices=("mongodb", "memory"), default="mongodb")
    parser.add_argument("--log-level", default="INFO", help="the façade's FACADE_LOG_LEVEL (shipped default INFO)")
    parser.add_argument("--serve-emulator", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", nargs=2, metavar=("SERVER", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator(args.serve_emulator, extra=60_000)
    elif args.serve_floor:
        serve_floor(args.serve_floor[0], int(args.serve_floor[1]))
    else:
        asyncio.run(run(args.seconds, args.rounds, args.store, args.log_level))


if __name__ == "__main__":
    main()
