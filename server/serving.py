"""The two ways the project serves an ASGI app.

Granian worker processes serve the façade (`nhs-fhir-facade serve`): `serve_workers`
imports an app factory in each worker, so every process builds its own app, sessions and
MongoDB client after the fork. Hypercorn serves where a server must run inside the current
event loop: the embedded NHS emulator (sandbox mode, started by the façade's lifespan) and
the integration tests. `serving` binds its socket before Hypercorn starts (port 0 = a free
port), so the caller knows the URL at once with no race for the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def check_can_listen(host: str, port: int) -> None:
    """Raise OSError now when (host, port) cannot be bound (in use, no such address, a
    privileged port): Granian would fail later, after its first log lines, with a Rust
    backtrace. A port taken between this check and Granian's bind still fails, loudly."""
    _bound_socket(host, port).close()


# Seconds a worker may take to finish its requests and its lifespan shutdown after SIGTERM
# before it is killed: inside the 10 s Docker and Kubernetes wait before their SIGKILL.
WORKER_STOP_SECONDS = 8


def serve_workers(
    factory: str, *, host: str, port: int, workers: int, log_config: dict[str, Any], log_level: str
) -> None:
    """Serve the ASGI app `factory` builds ("module:function", called with no arguments in
    each worker process) with Granian until SIGINT or SIGTERM, then stop every worker
    gracefully: in-flight requests end, then the app's lifespan shutdown runs.

    `log_config` (a logging dictConfig) is applied in the main process and in every worker;
    `log_level` is Granian's own (its start, workers and stop). Granian's access log stays off: request paths carry NHS numbers (the façade's own
    middleware logs each request without its path)."""
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    server = Server(
        factory,
        address=host,
        port=port,
        interface=Interfaces.ASGI,  # with the lifespan protocol: the app opens and closes its connections
        factory=True,
        workers=workers,
        loop=Loops.asyncio,  # the loop the tests run on (rloop or uvloop would be picked when installed)
        websockets=False,
        log_access=False,
        log_dictconfig=log_config,
        log_level=LogLevels(log_level.lower()),
        respawn_failed_workers=True,  # a crashed worker is replaced; a crash loop stops the server
        workers_kill_timeout=WORKER_STOP_SECONDS,
    )
    server.serve()


def hypercorn_config(bind: list[str]) -> Config:
    config = Config()
    config.bind = bind
    config.accesslog = None  # our middleware logs without paths (paths carry NHS numbers)
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2.0
    config.keep_alive_timeout = 30.0
    return config


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str = "127.0.0.1", port: int = 0, ready_path: str = "/") -> AsyncIterator[str]:
    """Run `app` until the block exits; yields its base URL once it answers HTTP."""
    sock = _bound_socket(host, port)
    actual_port = sock.getsockname()[1]
    config = hypercorn_config([f"fd://{os.dup(sock.fileno())}"])
    sock.close()
    shutdown = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown.wait))  # type: ignore[arg-type]
    url_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{url_host}:{actual_port}"
    try:
        await _wait_ready(base_url + ready_path, task)
        yield base_url
    finally:
        shutdown.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


async def _wait_ready(url: str, task: asyncio.Task[None], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if task.done():
                task.result()  # re-raise the startup failure
                raise RuntimeError("server stopped before it became ready")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    await resp.read()
                    return
            except (TimeoutError, aiohttp.ClientError):
                if loop.time() > deadline:
                    raise RuntimeError(f"server at {url} did not become ready") from None
                await asyncio.sleep(0.02)
