"""Bounded in-memory LRU cache store: the embedded default (no service needed).

Bodies are held as orjson bytes, so a caller can never change a cached entry by
mutating what it was given (MongoDB gives the same guarantee by decoding afresh).
Expiry is checked on read; the bound evicts the least recently used entry.
"""
from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable

import orjson

from server.cache.store import CacheKey, Document, expired

_BODY_FIELDS = ("resource", "result")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class MemoryStore:
    """One process's cache; lost on restart, never shared between replicas."""

    backend = "memory"

    def __init__(self, max_entries: int, clock: Callable[[], datetime] = _utcnow) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[CacheKey, Document] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: CacheKey) -> Document | None:
        stored = self._entries.get(key)
        if stored is None:
            return None
        if expired(stored, self.clock()):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        doc = {k: (orjson.loads(v) if k in _BODY_FIELDS else v) for k, v in stored.items()}
        doc["patients"] = list(stored["patients"])
        return doc

    async def put(self, doc: Document) -> None:
        key = CacheKey.of(doc)
        frozen = {k: (orjson.dumps(v) if k in _BODY_FIELDS else v) for k, v in doc.items()}
        frozen["patients"] = tuple(doc.get("patients") or ())
        self._entries[key] = frozen
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: CacheKey) -> None:
        self._entries.pop(key, None)

    async def purge_patient(self, patient_id: str) -> int:
        doomed = [k for k, d in self._entries.items() if patient_id in d["patients"]]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    async def health(self) -> dict[str, Any]:
        return {"backend": self.backend, "status": "up", "entries": len(self._entries),
                "maxEntries": self.max_entries}
