"""Search snapshots: a search's full result kept briefly so paging never re-asks NHS.

NHS APIs return whole result sets; re-running the upstream query for page 2 would spend
the tiny NHS rate limits on data we already had. Each search stores its ordered matches
under an unguessable id; page links carry only that id and an offset (opaque links).
Bounded in count and age; an expired id is 410 Gone, telling the client to search again.
Each snapshot is bound to its owner (the searching caller's binding key): the handler
answers anyone else 404, so a leaked page link is worth nothing.

Two stores keep them (the `Snapshots` protocol): this module's in-process LRU when no
MongoDB is configured, and server/page_snapshots.py's MongoDB store otherwise, so a next
link works on any worker or replica. A snapshot holds only what its owner was allowed to
see when searching and only ever answers that owner, for at most page_snapshot_ttl
seconds: a patient PDS flags restricted later is not taken out of snapshots already made
(the read-through cache purges its own copies; paging re-serves the owner's own result).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from server.fhir.search_request import SearchRequest


@dataclass(frozen=True)
class Snapshot:
    request: SearchRequest
    matches: tuple[dict[str, Any], ...]
    outcome: dict[str, Any] | None
    self_pairs: tuple[tuple[str, str], ...]
    scores: dict[str, float]
    created: float
    owner: str = ""


class Snapshots(Protocol):
    """Where search snapshots live (server.runtime.Runtime.snapshots)."""

    async def put(
        self,
        request: SearchRequest,
        matches: list[dict[str, Any]],
        outcome: dict[str, Any] | None,
        self_pairs: list[tuple[str, str]],
        scores: dict[str, float],
        *,
        owner: str,
    ) -> str:
        """Keep a search's result; returns the unguessable key its page links carry."""

    async def get(self, key: str) -> Snapshot | None:
        """The snapshot, or None when unknown or older than the TTL."""


class SnapshotStore:
    """In-process LRU of search snapshots with a maximum age."""

    def __init__(self, *, ttl: float, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._limit = limit
        self._clock = clock
        self._items: OrderedDict[str, Snapshot] = OrderedDict()

    async def put(
        self,
        request: SearchRequest,
        matches: list[dict[str, Any]],
        outcome: dict[str, Any] | None,
        self_pairs: list[tuple[str, str]],
        scores: dict[str, float],
        *,
        owner: str,
    ) -> str:
        key = secrets.token_urlsafe(16)
        self._items[key] = Snapshot(
            request, tuple(matches), outcome, tuple(self_pairs), dict(scores), self._clock(), owner
        )
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
        return key

    async def get(self, key: str) -> Snapshot | None:
        snap = self._items.get(key)
        if snap is None:
            return None
        if self._clock() - snap.created > self._ttl:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return snap
