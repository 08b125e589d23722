"""A per-process near cache in front of the shared MongoDB store, with bounded staleness.

Why: with MongoDB, every cached read is a `find_one` round trip, which costs the worker
more CPU (BSON decoding, PyMongo's async machinery) than the rest of the request, and
costs MongoDB as much again. Reads of one entry come in bursts (an EHR opening a record
reads the patient, then each clinical list; several users look at one patient), so a copy
of what MongoDB answered, kept in the process for a short time, saves most of them.

The bound, and why it keeps the restricted-patient rule: a copy is kept at most
`seconds` (FACADE_CACHE_NEAR_SECONDS, default 1 s, 0 = no near cache) after it was read
from MongoDB, and never past the entry's own expiresAt. A purge, delete or write through
this process drops its copies at once; one through another process or replica reaches
this process's copies within `seconds`, when they lapse. So a restricted patient purged
anywhere in the deployment is served by no process more than `seconds` after the purge,
a window of the same kind as the requests already in flight when it happened (see
server/cache/store.py), and no copy fetched before the purge returns to MongoDB. A
MongoDB outage changes nothing here: copies lapse on time, and the read-through layer
above stops serving cached copies while a purge is pending.

Copies are held as orjson bytes (decoded afresh on every get), so no caller can change
one by mutating what it was given, as with the memory store.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from server.cache.store import CacheKey, CacheStore, Document, FrozenDoc, expired

# Copies kept at most per process: enough for the entries hot in a few seconds.
NEAR_MAX_ENTRIES = 2048
# Purges remembered for refusing gets that were under way: pruned past this many to those
# of the last PURGE_MEMORY_SECONDS (longer than any MongoDB operation may take).
PURGES_REMEMBERED = 1024
PURGE_MEMORY_SECONDS = 300.0


@dataclass(frozen=True)
class _Copy:
    until: float  # monotonic time after which the copy is not served
    frozen: FrozenDoc


class NearCachedStore:
    """`inner` (the MongoDB store) with this process's copies of what it answered in front."""

    def __init__(
        self,
        inner: CacheStore,
        seconds: float,
        max_entries: int = NEAR_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.seconds = seconds
        self.max_entries = max_entries
        self.monotonic = monotonic
        self.clock = clock
        self._copies: OrderedDict[CacheKey, _Copy] = OrderedDict()
        # patient id -> monotonic time its last purge through this process completed: a get
        # asked before then may carry the purged copy, and is not kept.
        self._purged: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:  # status, start, ...: the inner store's
        return getattr(self.inner, name)

    async def get(self, key: CacheKey) -> Document | None:
        kept = self._copies.get(key)
        if kept is not None:
            if self.monotonic() < kept.until and not expired(kept.frozen.fields, self.clock()):
                self._copies.move_to_end(key)
                return kept.frozen.thaw()
            del self._copies[key]
        asked = self.monotonic()
        doc = await self.inner.get(key)
        if doc is not None:
            self._keep(key, doc, asked)
        return doc

    def _keep(self, key: CacheKey, doc: Document, asked: float) -> None:
        patients = tuple(doc.get("patients") or ())
        if any(self._purged.get(p, float("-inf")) >= asked for p in patients):
            return  # read from MongoDB while a purge of a patient it names was under way
        self._copies[key] = _Copy(self.monotonic() + self.seconds, FrozenDoc.of(doc))
        self._copies.move_to_end(key)
        while len(self._copies) > self.max_entries:
            self._copies.popitem(last=False)

    async def put(self, doc: Document) -> None:
        # Not kept here: MongoDB may yet refuse the copy (a purge's tombstone); the next get
        # reads what it holds.
        self._copies.pop(CacheKey.of(doc), None)
        await self.inner.put(doc)

    async def delete(self, key: CacheKey) -> None:
        self._copies.pop(key, None)
        await self.inner.delete(key)

    async def purge_patient(self, patient_id: str) -> int | None:
        self._drop_patient(patient_id)
        try:
            return await self.inner.purge_patient(patient_id)
        finally:
            self._drop_patient(patient_id)  # and what a get read meanwhile is refused

    def _drop_patient(self, patient_id: str) -> None:
        now = self.monotonic()
        if len(self._purged) > PURGES_REMEMBERED:
            self._purged = {p: t for p, t in self._purged.items() if now - t < PURGE_MEMORY_SECONDS}
        self._purged[patient_id] = now
        for key in [k for k, c in self._copies.items() if patient_id in c.frozen.patients]:
            del self._copies[key]

    async def health(self) -> dict[str, Any]:
        return {**await self.inner.health(), "nearCache": {"seconds": self.seconds, "entries": len(self._copies)}}
