"""The console as create_app sees it: one object or None, its routes and its middleware.

create_app asks `build_console` once; None (the console off) means no routes and no trace
middleware, so a façade without the console pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route

from server.access.wiring import AccessConfigError, dev_issuer_trusted
from server.console.gate import console_mode_for
from server.console.routes import console_routes
from server.console.state import ConsoleState
from server.console.trace_middleware import TraceMiddleware
from server.fhir.errors import NotFound
from server.request_trace import TraceBuffer
from server.settings import Settings
from server.sources.base import Source
from server.sources.config import SourceConfig


def build_console(settings: Settings, sources: Sequence[Source]) -> ConsoleState | None:
    mode = console_mode_for(settings, sources)
    if mode == "off":
        return None
    try:
        dev_tokens = mode == "sandbox" and dev_issuer_trusted(
            settings, SourceConfig.resolve(settings, sources).configured_urls()
        )
    except AccessConfigError:
        dev_tokens = False  # the access wiring stops the start-up with this error
    return ConsoleState(
        mode=mode,
        settings=settings,
        sources=tuple(sources),
        traces=TraceBuffer(settings.console_trace_capacity),
        dev_tokens=dev_tokens,
    )


def routes(console: ConsoleState | None) -> list[BaseRoute]:
    """The console's routes; with the console off, one mount that answers 404 for all of
    /_console, so its public paths (server.access.middleware.PUBLIC_PATHS) never reach a
    FHIR handler unauthenticated (GET /_console/api/config is a compartment search's shape)."""
    if console is not None:
        return console_routes(console)
    return [Route("/_console", _console_off, methods=["GET", "POST"]), Mount("/_console", app=_console_off)]


async def _console_off(*_: Any) -> None:
    """Every /_console path with the console off (a Route's request, or a Mount's ASGI call)."""
    raise NotFound("The console is off here (FACADE_CONSOLE).")


def middleware(console: ConsoleState | None) -> list[Middleware]:
    """The trace recorder, to go directly inside RequestIdMiddleware (it reads the request id)."""
    return [Middleware(TraceMiddleware, console=console)] if console is not None else []
