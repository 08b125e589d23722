"""A MongoDB for the tests: FACADE_TEST_MONGODB_URI when set, else SecantusDB started here.

No MongoDB server package exists on these machines, so `make test` installs SecantusDB
(a MongoDB wire-protocol server on WiredTiger; GPL-2.0, beta) into its own virtual
environment, .venv-testdb. It runs as a separate process started with that venv's
Python: it is never imported into the test process or the application. Started from
Python (not its CLI) so its TTL monitor sweeps every second instead of every minute.

A run that can reach no MongoDB at all fails loudly; it never skips the MongoDB tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

REPO = Path(__file__).resolve().parents[2]
TESTDB_VENV = Path(os.environ.get("FACADE_TEST_SECANTUS_VENV", REPO / ".venv-testdb"))
URI_VARIABLE = "FACADE_TEST_MONGODB_URI"

# Runs in .venv-testdb's Python: start the server, print its port, stop when told to
# (SIGTERM) or when the test process goes away (its stdin pipe closes).
_LAUNCHER = """
import os, signal, sys, threading, secantus
server = secantus.SecantusDBServer(host="127.0.0.1", port=int(sys.argv[1]), storage_path=sys.argv[2],
                                   ttl_sweep_seconds=1)
server.start()
print(server.port, flush=True)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nobody reads stdout after the port: never block on it
signal.signal(signal.SIGTERM, lambda *_: server.stop())
threading.Thread(target=lambda: (sys.stdin.read(), server.stop()), daemon=True).start()
server.wait()
"""


def ping(uri: str, timeout: float = 0.5) -> bool:
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=int(timeout * 1000))
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class SecantusProcess:
    """One SecantusDB server process on a loopback port (0 = a free one). In memory by
    default; with a `storage_path` on disk (WiredTiger with its journal), what it
    acknowledged before a SIGKILL is still there when it is started again (same port,
    same path): the restart tests need that."""

    def __init__(self, port: int = 0, storage_path: str | Path = ":memory:") -> None:
        self.port = port
        self.storage_path = str(storage_path)
        self.process: subprocess.Popen[str] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> str:
        python = TESTDB_VENV / "bin" / "python"
        if not python.exists():
            raise RuntimeError(
                f"{python} is missing: run `make test` (it installs SecantusDB into .venv-testdb) "
                f"or set {URI_VARIABLE} to a MongoDB URL"
            )
        self.process = subprocess.Popen(
            [str(python), "-c", _LAUNCHER, str(self.port), self.storage_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            self.kill()
            raise RuntimeError("SecantusDB did not start (no port printed)")
        self.port = int(line)
        deadline = time.monotonic() + timeout
        while not ping(self.uri):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError("SecantusDB started but never answered ping")
            time.sleep(0.05)
        return self.uri

    def kill(self) -> None:
        """SIGKILL: the way a crashed MongoDB goes (no goodbye to clients)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass(frozen=True)
class MongoServer:
    uri: str
    fast_ttl_sweep: bool  # True when the server deletes expired documents within seconds


@dataclass(frozen=True)
class MongoTarget:
    """One test's own database on the session's server; dropped after the test."""

    uri: str
    database: str
    fast_ttl_sweep: bool


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    external = os.environ.get(URI_VARIABLE)
    if external:
        if not ping(external, timeout=5):
            pytest.fail(f"{URI_VARIABLE} is set but that MongoDB does not answer ping")
        yield MongoServer(external, fast_ttl_sweep=False)
        return
    server = SecantusProcess()
    try:
        uri = server.start()
    except RuntimeError as exc:
        pytest.fail(f"No MongoDB for the MongoDB tests: {exc}")
    try:
        yield MongoServer(uri, fast_ttl_sweep=True)
    finally:
        server.stop()


@pytest.fixture
def mongo_db(mongo_server: MongoServer) -> Iterator[MongoTarget]:
    name = f"facade_test_{uuid.uuid4().hex[:12]}"
    yield MongoTarget(mongo_server.uri, name, mongo_server.fast_ttl_sweep)
    client: MongoClient = MongoClient(mongo_server.uri, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    finally:
        client.close()


@contextlib.asynccontextmanager
async def target_collection(target: MongoTarget, name: str) -> AsyncIterator[Any]:
    """A collection of a test's database, read with its own client (what the façade wrote)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(target.uri, serverSelectionTimeoutMS=5000)
    try:
        yield client[target.database][name]
    finally:
        await client.close()
