"""The emulator started on a free loopback port inside the façade's own event loop."""
from __future__ import annotations

import contextlib
from types import TracebackType

from server.sandbox.app import create_emulator_app
from server.serving import serving


class EmbeddedEmulator:
    """Async context manager: `base_url` is set while it runs."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.base_url = ""
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> EmbeddedEmulator:
        self.base_url = await self._stack.enter_async_context(
            serving(create_emulator_app(), self.host, self.port, ready_path="/_control/requests"))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()
