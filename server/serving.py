"""Serve an ASGI app with Hypercorn on a loopback socket inside the current event loop.

Used for the embedded NHS emulator (sandbox mode) and by the integration tests. The
socket is bound before Hypercorn starts (port 0 = a free port), so the caller knows the
URL at once with no race for the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator

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
