"""Request limits (issue 8): the numbers that bound what one request may cost, and the
errors that refuse a request over them.

Each worker serves every client from one event loop, so one request that is read whole
(a 50 MB body) or parsed at length (40,000 `_elements` names) stalls them all. The
limits come from settings (`FACADE_MAX_BODY_BYTES`, `FACADE_MAX_QUERY_CHARS`,
`FACADE_MAX_LIST_ITEMS`). The edge middleware (server.fhir.body_limit) enforces the sizes
and makes the limits current for the request it serves, so the search parser, deep
inside a handler, counts list items against the same configured numbers (the same
context-local pattern as server.fhir.response_notes).

    FHIRError
     ├── PayloadTooLarge   413 too-costly  body over max_body_bytes
     ├── UriTooLong        414 too-costly  query string over max_query_chars
     └── BadRequest
          └── TooManyItems 400 too-costly  a list over max_list_items
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from server.fhir.errors import BadRequest, FHIRError


@dataclass(frozen=True)
class RequestLimits:
    """The configured limits; the defaults are the settings' defaults."""

    max_body_bytes: int = 1_048_576
    max_query_chars: int = 8192
    max_list_items: int = 100

    @classmethod
    def from_settings(cls, settings: Any) -> RequestLimits:
        return cls(settings.max_body_bytes, settings.max_query_chars, settings.max_list_items)


_CURRENT: ContextVar[RequestLimits] = ContextVar("request_limits", default=RequestLimits())  # noqa: B039 (frozen)


def current_limits() -> RequestLimits:
    """The limits of the request being served (the defaults outside one, e.g. in unit tests)."""
    return _CURRENT.get()


@contextlib.contextmanager
def limits_in_force(limits: RequestLimits) -> Iterator[None]:
    """Make `limits` current for the code run inside the block (one request)."""
    token = _CURRENT.set(limits)
    try:
        yield
    finally:
        _CURRENT.reset(token)


class PayloadTooLarge(FHIRError):
    status = 413
    issue_code = "too-costly"


class UriTooLong(FHIRError):
    status = 414
    issue_code = "too-costly"


class TooManyItems(BadRequest):
    issue_code = "too-costly"


def body_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {limit} bytes, the most this server accepts (FACADE_MAX_BODY_BYTES)"
    )


def query_too_long(length: int, limit: int) -> UriTooLong:
    return UriTooLong(
        f"The query string has {length} characters; this server accepts at most {limit} "
        "(FACADE_MAX_QUERY_CHARS). Send long searches as POST [type]/_search with a form body"
    )


def check_count(what: str, count: int, limit: int) -> None:
    """Raise TooManyItems when `what` lists more than `limit` items."""
    if count > limit:
        raise TooManyItems(f"{what}: {count} given, at most {limit} accepted (FACADE_MAX_LIST_ITEMS)")
