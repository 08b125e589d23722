"""The emulator started on a free loopback port inside the façade's own event loop."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from types import TracebackType

from server.sandbox.app import create_emulator_app
from server.serving import serving
from server.sources.base import Source
from server.sources.registry import SOURCES


class EmbeddedEmulator:
    """Async context manager: `base_url` is set while it runs."""

    def __init__(self, sources: Sequence[Source] = SOURCES, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sources = tuple(sources)
        self.host = host
        self.port = port
        self.base_url = ""
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> EmbeddedEmulator:
        self.base_url = await self._stack.enter_async_context(
            serving(create_emulator_app(sources=self.sources), self.host, self.port, ready_path="/_control/requests")
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()
