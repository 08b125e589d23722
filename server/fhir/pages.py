"""Search snapshots: a search's full result kept briefly so paging never re-asks NHS.

NHS APIs return whole result sets; re-running the upstream query for page 2 would spend
the tiny NHS rate limits on data we already had. Each search stores its ordered matches
under an unguessable id; page links carry only that id and an offset (opaque links).
Bounded in count and age; an expired id is 410 Gone, telling the client to search again.
Each snapshot is bound to its owner (the searching caller's binding key): the handler
answers anyone else 404, so a leaked page link is worth nothing.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


class SnapshotStore:
    """In-process LRU of search snapshots with a maximum age."""

    def __init__(self, *, ttl: float, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._limit = limit
        self._clock = clock
        self._items: OrderedDict[str, Snapshot] = OrderedDict()

    def put(
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

    def get(self, key: str) -> Snapshot | None:
        snap = self._items.get(key)
        if snap is None:
            return None
        if self._clock() - snap.created > self._ttl:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return snap
