"""Bounded soak: does the deployed shape stay flat for a few minutes of mixed traffic?

Starts, each as its own process on loopback: SecantusDB (or uses FACADE_MONGODB_URI), the
NHS emulator (`nhs-fhir-facade emulator`) and the façade as the operator runs it with
several workers sharing MongoDB (`nhs-fhir-facade serve --workers 2`). Then it sends a
steady, paced mix of reads and searches over the four types:

    Patient read, Patient search (PDS)       MedicationRequest search (CPT, session headers)
    ServiceRequest search (BaRS)             AllergyIntolerance search (GP Connect)

each with the benchmark's bearer token (bench/facade_access.py). Before about one request
in twenty (`--fault-rate`) it queues one NHS fault for that request through the emulator's
/_control/faults (a 500, 502 or 503, a dropped connection, an unreadable body or a 300 ms
delay). The fault is keyed to the request's X-Request-ID, which the façade sends on to
NHS as X-Correlation-ID, so it meets that request and no other in flight. Transient ones
are retried by the façade, the rest become its 502, 503 or 504, which are counted apart
from errors. The read-through cache is off unless `--cache` is given, so every request
reaches the emulator and the injected faults meet real requests; the NHS client-side rate
limits and the per-caller quota are lifted.

Per 10-second window it prints the requests, the error rate (non-2xx other than 502, 503
and 504, plus client-side failures), the 502/503/504 count, p50 and p99 latency, the RSS
of each worker (psutil when installed, else /proc/<pid>/status), the CPU milliseconds per
request of the workers together and of the database server (when the soak started it),
and the load average. The p99 is given twice: of every request, and of the "clean" ones,
with no fault queued for them. An injected fault buys retries with jittered backoff of up
to 2 s on purpose, so the overall p99 swings from window to window; the clean p99 is the
façade's own tail.

At the end: the clean p99 drift (the median of the first half's windows against the last
half's: one window's p99 is its few worst requests, so one spike on a shared machine
decided the old last-against-first verdict), each worker's RSS growth, and the CPU per
request drift of the façade and of the database, each FLAT or GROWING. A latency that
grows while the façade's CPU per request stays flat and the database's grows is said to be
the database's. The soak's own SecantusDB runs without retryable writes
(SECANTUS_URI_OPTIONS says why); a MongoDB named in FACADE_MONGODB_URI is used as given,
and is where the drift should be judged for a deployment. It prints and asserts nothing.
The emulator's request log and fault list are cleared at every window (/_control/reset),
so the emulator's own growth does not show as drift.

    PYTHONPATH=. python bench/soak.py [--seconds 120] [--rate 40] [--workers 2] [--cache]

Latency is measured from sending a request to its answer; a request waits for a free
connection first when the façade falls behind the pace (that wait is not in the figures,
the shortfall shows as fewer requests in the window).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.facade_access import facade_env  # noqa: E402
from bench.process_stats import child, cpu_seconds, rss_mib, worker_pids  # noqa: E402
from tests.support.processes import clean_environment, serving_process  # noqa: E402
from tests.support.servers import free_port  # noqa: E402
from tests.support.tokens import bearer  # noqa: E402

WINDOW_SECONDS = 10.0
PATIENT = "9000000009"
FAULT_STATUSES = (502, 503, 504)  # what an NHS fault the façade could not absorb becomes
CPT_SESSION = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
}


@dataclass(frozen=True)
class Kind:
    """One kind of request in the mix, and the emulator path its upstream calls start with."""

    name: str
    path: str
    upstream: str
    weight: int
    headers: dict[str, str] = field(default_factory=dict)


MIX = (
    Kind("Patient read", f"/Patient/{PATIENT}", "/personal-demographics/FHIR/R4", 3),
    Kind("Patient search", "/Patient?family=Smith&birthdate=eq2010-10-22", "/personal-demographics/FHIR/R4", 2),
    Kind(
        "MedicationRequest search",
        f"/MedicationRequest?patient={PATIENT}",
        "/clinical-prescription-tracker",
        2,
        CPT_SESSION,
    ),
    Kind("ServiceRequest search", f"/ServiceRequest?patient={PATIENT}", "/booking-and-referral/FHIR/R4", 2),
    Kind("AllergyIntolerance search", f"/AllergyIntolerance?patient={PATIENT}", "/gpconnect/", 2),
)
FAULTS = (
    {"status": 503},
    {"status": 502},
    {"status": 500},
    {"reset": True},
    {"malformed": True},
    {"delay": 0.3},
)


# ---- processes ---------------------------------------------------------------------------


# SecantusDB, a Python test server, slows as its retryable-write history grows. Measured
# here with retryable writes, in two runs: a soak's p50 of 8-13 ms became 35-415 ms from
# about its 130th second, SecantusDB's CPU rising to most of a core, the façade's CPU per
# request flat. Without them: 8-10 ms for 240 s. With them the soak measures the test server.
SECANTUS_URI_OPTIONS = "retryWrites=false"


@contextlib.contextmanager
def mongodb() -> Iterator[tuple[str, int | None]]:
    """FACADE_MONGODB_URI when set (a real MongoDB, used as given), else SecantusDB on a
    free port, without retryable writes (SECANTUS_URI_OPTIONS); with the server's pid when
    it is ours, so its CPU time can be read."""
    if os.environ.get("FACADE_MONGODB_URI"):
        yield os.environ["FACADE_MONGODB_URI"], None
        return
    from tests.support.mongo import SecantusProcess

    server = SecantusProcess()
    try:
        uri = server.start()
        yield f"{uri}&{SECANTUS_URI_OPTIONS}", server.process.pid if server.process else None
    finally:
        server.stop()


@contextlib.contextmanager
def emulator(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`nhs-fhir-facade emulator` in its own process, so its CPU is not the load generator's."""
    command = ["-m", "server", "emulator", "--port", str(port)]
    with child(command, clean_environment({"FACADE_LOG_LEVEL": "WARNING"}), inherit=False) as proc:
        yield proc


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} never answered")
            await asyncio.sleep(0.1)


# ---- load and figures --------------------------------------------------------------------


@dataclass
class Window:
    latencies_ms: list[float] = field(default_factory=list)
    # Requests with no fault queued for them: their tail is the façade's own, not
    # the retry backoff (up to 2 s, jittered) an injected fault buys on purpose.
    clean_ms: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0  # non-2xx other than 502/503/504, and client-side failures
    fault_statuses: int = 0  # 502/503/504: what an injected NHS fault may end as
    faults_injected: int = 0
    error_samples: list[str] = field(default_factory=list)

    def pct(self, p: float, clean: bool = False) -> float:
        values = self.clean_ms if clean else self.latencies_ms
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Row:
    """What one finished window printed (kept for the summary)."""

    p99: float  # of the requests with no fault queued for them
    rss: dict[int, float | None]
    facade_cpu_ms: float | None = None  # the workers' CPU time per request in the window
    database_cpu_ms: float | None = None  # the MongoDB server's, when the soak started it


class CpuPerRequest:
    """CPU milliseconds per request that a set of processes spent in each window (Linux
    /proc): what tells a latency drift of the façade's own from one of the database's."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.last = self._total()

    def _total(self) -> float | None:
        times = [cpu_seconds(pid) for pid in self.pids]
        if not times or any(t is None for t in times):
            return None
        return sum(t for t in times if t is not None)

    def window(self, requests: int) -> float | None:
        """The ms per request since the last call; None when unreadable or no requests."""
        now, before = self._total(), self.last
        self.last = now
        if now is None or before is None or not requests:
            return None
        return (now - before) * 1000 / requests


class Soak:
    def __init__(self, base: str, emulator_url: str, fault_rate: float, seed: int) -> None:
        self.base = base
        self.emulator_url = emulator_url
        self.fault_rate = fault_rate
        self.random = random.Random(seed)
        self.window = Window()
        self.kinds = [k for k in MIX for _ in range(k.weight)]

    async def one(self, http: aiohttp.ClientSession) -> None:
        kind = self.random.choice(self.kinds)
        window = self.window
        request_id = str(uuid.uuid4())
        faulted = self.random.random() < self.fault_rate
        if faulted:
            fault = {
                **self.random.choice(FAULTS),
                "path_prefix": kind.upstream,
                "correlation_id": request_id,  # this request's first call to its upstream, no other
                "times": 1,
            }
            async with http.post(self.emulator_url + "/_control/faults", json=fault) as resp:
                await resp.read()
            window.faults_injected += 1
        headers = {**bearer(), **kind.headers, "X-Request-ID": request_id}
        start = time.perf_counter()
        try:
            async with http.get(self.base + kind.path, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            window.requests += 1
            window.errors += 1
            window.error_samples.append(f"{kind.name}: {type(exc).__name__}")
            return
        elapsed_ms = (time.perf_counter() - start) * 1000
        window.latencies_ms.append(elapsed_ms)
        if not faulted:
            window.clean_ms.append(elapsed_ms)
        window.requests += 1
        if status in FAULT_STATUSES:
            window.fault_statuses += 1
        elif not 200 <= status < 300:
            window.errors += 1
            window.error_samples.append(f"{kind.name}: {status}")

    async def run(self, rate: float, connections: int, stop_at: float) -> None:
        """Start one request every 1/rate s, at most `connections` in flight, until `stop_at`."""
        slots = asyncio.Semaphore(connections)
        tasks: set[asyncio.Task[None]] = set()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout) as http:
            next_at = time.perf_counter()
            while time.perf_counter() < stop_at:
                await slots.acquire()
                task = asyncio.create_task(self.one(http))
                tasks.add(task)
                task.add_done_callback(lambda t: (tasks.discard(t), slots.release()))
                next_at += 1 / rate
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


def print_header(pids: list[int]) -> None:
    rss = "".join(f"{'RSS ' + str(pid):>13}" for pid in pids)
    print(
        f"{'window':>8}{'requests':>10}{'errors':>8}{'err %':>7}{'502-4':>7}{'faults':>8}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'clean p99':>10}{rss}{'CPU/req':>9}{'db CPU/req':>11}{'load':>7}  "
        "(RSS in MiB; CPU ms per request: the façade's workers, the database's; clean: no fault queued for it)"
    )


def _ms(value: float | None, width: int) -> str:
    return f"{value:{width}.2f}" if value is not None else f"{'-':>{width}}"


def print_window(index: int, window: Window, row: Row) -> None:
    error_rate = 100 * window.errors / window.requests if window.requests else 0.0
    memory = "".join(f"{value:13.1f}" if value is not None else f"{'gone':>13}" for value in row.rss.values())
    print(
        f"{f'{index * WINDOW_SECONDS:.0f}s':>8}{window.requests:10d}{window.errors:8d}{error_rate:7.2f}"
        f"{window.fault_statuses:7d}{window.faults_injected:8d}{window.pct(50):9.1f}{window.pct(99):9.1f}"
        f"{window.pct(99, clean=True):10.1f}{memory}{_ms(row.facade_cpu_ms, 9)}{_ms(row.database_cpu_ms, 11)}"
        f"{os.getloadavg()[0]:7.2f}",
        flush=True,
    )
    for sample in sorted(set(window.error_samples))[:3]:
        print(f"{'':8}error: {sample}")


def halves(values: list[float | None]) -> tuple[float, float] | None:
    """The median of the first half of the windows' values and of the last half (the
    middle window, in an odd count, in neither); None when a window has no value. One
    window's p99 is its few worst requests, and a shared machine puts a spike in any
    window; a median over half the run does not move for one spike, and does for a tail
    that keeps rising."""
    half = len(values) // 2
    if half == 0 or any(v is None for v in values):
        return None
    known = [v for v in values if v is not None]
    return statistics.median(known[:half]), statistics.median(known[-half:])


# A CPU cost per request that grows by more than this, first half to last, is growing.
CPU_DRIFT = 1.25


def cpu_drift(rows: list[Row]) -> tuple[bool, bool | None]:
    """Print the façade's CPU per request drift, and the database's when known; return
    whether each is flat (None: the database's CPU time is not readable here)."""
    verdicts: list[bool | None] = []
    for name, values in (
        ("façade CPU per request (its workers)", [r.facade_cpu_ms for r in rows]),
        ("database CPU per request (the SecantusDB the soak started)", [r.database_cpu_ms for r in rows]),
    ):
        pair = halves(values)
        if pair is None:
            verdicts.append(None)
            continue
        early, late = pair
        flat = late <= early * CPU_DRIFT
        verdicts.append(flat)
        print(
            f"{name}: {early:.2f} ms in the first half, {late:.2f} ms in the last "
            f"({late / early if early else float('nan'):.2f}x): {'FLAT' if flat else 'GROWING'} "
            f"(FLAT: within {CPU_DRIFT}x)"
        )
    return verdicts[0] is not False, verdicts[1]


def verdict(rows: list[Row], totals: Window, workers: list[int]) -> None:
    """p99 drift (first half of the run against the last) and RSS growth (last window
    against the first), with FLAT or GROWING."""
    if len(rows) < 2:
        print("\nfewer than two windows: no drift to report (run longer)")
        return
    first, last = rows[0], rows[-1]
    early, late = halves([r.p99 for r in rows]) or (float("nan"), float("nan"))
    drift = late / early if early else float("nan")
    latency_flat = drift <= 1.5 or late - early <= 5.0
    print(
        f"\np99 drift (clean requests, median of each half's windows): {early:.1f} ms in the first half, "
        f"{late:.1f} ms in the last ({drift:.2f}x; first window {first.p99:.1f} ms, last {last.p99:.1f} ms): "
        f"{'FLAT' if latency_flat else 'GROWING'} (FLAT: within 1.5x or 5 ms)"
    )
    facade_cpu_flat, database_cpu_flat = cpu_drift(rows)
    memory_flat = True
    minutes = (len(rows) - 1) * WINDOW_SECONDS / 60
    for pid in workers:
        start, end = first.rss.get(pid), last.rss.get(pid)
        if start is None or end is None:
            print(f"worker {pid}: RSS not readable at both ends (it was replaced?)")
            memory_flat = False
            continue
        growth = end - start
        flat = growth <= max(5.0, 0.05 * start)
        memory_flat &= flat
        print(
            f"worker {pid} RSS: {start:.1f} -> {end:.1f} MiB ({growth:+.1f} MiB, {growth / minutes:+.1f} MiB/min): "
            f"{'FLAT' if flat else 'GROWING'} (FLAT: within 5 MiB or 5 %)"
        )
    error_rate = 100 * totals.errors / totals.requests if totals.requests else 0.0
    print(
        f"in all: {totals.requests} requests, {error_rate:.2f} % errors, {totals.fault_statuses} answered 502/503/504 "
        f"after {totals.faults_injected} injected NHS faults"
    )
    print(f"verdict: {'FLAT' if latency_flat and memory_flat and facade_cpu_flat else 'GROWING'}")
    if not latency_flat and facade_cpu_flat and database_cpu_flat is False:
        print(
            "the latency grew with the database's CPU per request while the façade's stayed flat: "
            "the drift is the database server's; judge it again on the MongoDB you deploy (FACADE_MONGODB_URI)"
        )


async def run(args: argparse.Namespace) -> None:
    facade_port, emulator_port = free_port(), free_port()
    base = f"http://127.0.0.1:{facade_port}"
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with mongodb() as (mongo_uri, mongo_pid), tempfile.TemporaryDirectory(prefix="facade-soak-") as tmp:
        with emulator(emulator_port) as emulator_proc:
            emulator_url = f"http://127.0.0.1:{emulator_port}"
            await wait_ready(emulator_url + "/_control/requests", emulator_proc)
            env = clean_environment(
                {
                    **facade_env(base),
                    "FACADE_BASE_URL": base,
                    "FACADE_MONGODB_URI": mongo_uri,
                    "FACADE_MONGODB_DATABASE": f"soak_{uuid.uuid4().hex[:8]}",
                    "FACADE_EMULATOR_URL": emulator_url,
                    "FACADE_CACHE_ENABLED": "true" if args.cache else "false",
                    "FACADE_UPSTREAM_RATE_LIMITS": "{}",
                    "FACADE_LOG_LEVEL": "INFO",  # the shipped level: one access line per request
                    "FACADE_AUDIT_SPOOL_DIR": tmp,
                }
            )
            log_path = Path(tmp) / "serve.log"
            flags = ("--workers", str(args.workers))
            async with serving_process(env, facade_port, log_path, *flags, workers=args.workers) as served:
                workers = worker_pids(served.process.pid)
                print(
                    f"serve --workers {args.workers} (pid {served.process.pid}, workers {workers}) on "
                    f"{f'SecantusDB ({SECANTUS_URI_OPTIONS})' if mongo_pid else 'MongoDB'}; "
                    f"{args.rate:g} req/s paced, at most {args.connections} in flight; "
                    f"{100 * args.fault_rate:g} % NHS faults; cache {'on' if args.cache else 'off'}; "
                    f"{args.seconds:g} s in {WINDOW_SECONDS:g} s windows after {args.warmup:g} s warm-up"
                )
                soak = Soak(base, emulator_url, args.fault_rate, args.seed)
                await drive(soak, args, workers, emulator_url, mongo_pid)
                code = served.stop()
                if code != 0:
                    print(f"serve exited with {code}; its log:\n{served.log()[-2000:]}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


async def drive(
    soak: Soak, args: argparse.Namespace, workers: list[int], emulator_url: str, database_pid: int | None
) -> None:
    """Warm up, then the measured windows; prints each window as it ends, then the verdict."""
    begin = time.perf_counter()
    stop_at = begin + args.warmup + args.seconds
    load = asyncio.create_task(soak.run(args.rate, args.connections, stop_at))
    rows: list[Row] = []
    totals = Window()
    await asyncio.sleep(args.warmup)
    soak.window = Window()  # the warm-up's requests are not counted
    facade_cpu = CpuPerRequest(workers)
    database_cpu = CpuPerRequest([database_pid] if database_pid is not None else [])
    print_header(workers)
    async with aiohttp.ClientSession() as control:
        for index in range(1, int(args.seconds // WINDOW_SECONDS) + 1):
            await asyncio.sleep(max(0.0, begin + args.warmup + index * WINDOW_SECONDS - time.perf_counter()))
            window, soak.window = soak.window, Window()
            async with control.post(emulator_url + "/_control/reset") as resp:  # keep the emulator flat
                await resp.read()
            row = Row(
                window.pct(99, clean=True),
                {pid: rss_mib(pid) for pid in workers},
                facade_cpu.window(window.requests),
                database_cpu.window(window.requests),
            )
            print_window(index, window, row)
            rows.append(row)
            totals.requests += window.requests
            totals.errors += window.errors
            totals.fault_statuses += window.fault_statuses
            totals.faults_injected += window.faults_injected
    await load
    verdict(rows, totals, workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="measured length (windows of 10 s)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the first window")
    parser.add_argument("--rate", type=float, default=40.0, help="requests started per second")
    parser.add_argument("--connections", type=int, default=16, help="requests in flight at most")
    parser.add_argument("--workers", type=int, default=2, help="Granian workers of `serve`")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of requests preceded by an NHS fault")
    parser.add_argument("--cache", action="store_true", help="keep the read-through cache on (faults then rarely bite)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
