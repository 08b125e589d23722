"""A small channel from provider code to the HTTP response: extra headers.

Providers return resources, not responses, yet some layers below the handler know
something the client should see (the cache: X-Cache, Age, Warning). The handler opens
a collection around its provider call; anything below may add headers to it. A call
outside a collection (an _include read, a background task) adds nothing, so only the
primary read or search speaks for the response.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

_collected: ContextVar[dict[str, str] | None] = ContextVar("facade_response_headers", default=None)


def add_response_headers(headers: Mapping[str, str]) -> None:
    target = _collected.get()
    if target is not None:
        target.update(headers)


@contextlib.contextmanager
def collecting_response_headers() -> Iterator[dict[str, str]]:
    collected: dict[str, str] = {}
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)
