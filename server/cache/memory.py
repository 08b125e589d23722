"""Bounded in-memory LRU cache store: the embedded default (no service needed).

Bodies are held as orjson bytes, so a caller can never change a cached entry by
mutating what it was given (MongoDB gives the same guarantee by decoding afresh).
Expiry is checked on read; the bound evicts the least recently used entry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from server.cache.store import TOMBSTONE_SECONDS, CacheKey, Document, FrozenDoc, expired, purged_after_request


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class MemoryStore:
    """One process's cache; lost on restart, never shared between replicas."""

    backend = "memory"

    def __init__(self, max_entries: int, clock: Callable[[], datetime] = _utcnow) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[CacheKey, FrozenDoc] = OrderedDict()
        self._tombstones: dict[str, datetime] = {}  # patient id -> when it was last purged

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: CacheKey) -> Document | None:
        stored = self._entries.get(key)
        if stored is None:
            return None
        if expired(stored.fields, self.clock()):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return stored.thaw()

    async def put(self, doc: Document) -> None:
        if any(purged_after_request(doc, self._tombstones.get(p)) for p in doc.get("patients") or ()):
            return  # requested before a restricted patient it names was purged (server/cache/store.py)
        key = CacheKey.of(doc)
        self._entries[key] = FrozenDoc.of(doc)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: CacheKey) -> None:
        self._entries.pop(key, None)

    async def purge_patient(self, patient_id: str) -> int | None:
        now = self.clock()
        oldest = now - timedelta(seconds=TOMBSTONE_SECONDS)
        self._tombstones = {p: t for p, t in self._tombstones.items() if t > oldest}
        self._tombstones[patient_id] = now
        doomed = [k for k, d in self._entries.items() if patient_id in d.patients]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    async def health(self) -> dict[str, Any]:
        return {"backend": self.backend, "status": "up", "entries": len(self._entries), "maxEntries": self.max_entries}
