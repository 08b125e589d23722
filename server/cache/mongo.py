"""MongoDB cache store on PyMongo's async API (AsyncMongoClient; Motor is end of life).

Why it is shaped like this:
- One collection; a unique compound index on (kind, type, key, scope) makes
  `replace_one(..., upsert=True)` the whole write path (atomic per document, no
  transactions: a standalone mongod refuses them). A TTL index on expiresAt lets the
  server delete dead entries, and every read filters on expiresAt too, because the TTL
  monitor runs only about once a minute.
- Every operation is guarded: a MongoDB failure is logged by type only (exception
  messages can quote keys, and keys are NHS numbers) and reads as a miss / no-op. After a
  connection failure the store stays "down" for PROBE_INTERVAL seconds, so a dead server
  costs at most one short server-selection timeout per interval, not one per request.
  PyMongo reconnects by itself; the first operation after the interval finds the server
  again and indexes missing at start-up are created then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from bson.errors import BSONError
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from server.cache.store import KEY_FIELDS, TOMBSTONE_SECONDS, CacheKey, Document, expired
from server.mongodb import create_client  # noqa: F401  (re-exported: the cache tests open clients with it)

log = logging.getLogger("facade.cache")

COLLECTION = "fhir_cache"
# A restricted patient's tombstone is a document of this kind in the same collection (no
# `patients` field, so purges never delete it; expiresAt lets the TTL index drop it).
TOMBSTONE_KIND = "purged"
PROBE_INTERVAL = 1.0  # seconds a failed MongoDB is left alone before the next try
T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class MongoStore:
    """Cache documents in one MongoDB collection; see the module docstring for the rules."""

    backend = "mongodb"

    def __init__(self, collection: AsyncCollection[Document], clock: Callable[[], datetime] = _utcnow) -> None:
        self.collection = collection
        self.clock = clock
        self._indexes_ready = False
        self._down_until = 0.0
        self._status = "unknown"
        self._last_error: str | None = None
        self._down_since: datetime | None = None

    @property
    def status(self) -> str:
        """ "up", "down" or "unknown" (no operation yet)."""
        return self._status

    async def start(self) -> None:
        """Create the indexes now if MongoDB answers; otherwise on the first success later."""
        await self._guarded("start", self._noop, None)

    async def _noop(self) -> None:
        return None

    async def _ensure_indexes(self) -> None:
        await self.collection.create_index([(f, ASCENDING) for f in KEY_FIELDS], unique=True, name="cache_key")
        await self.collection.create_index("expiresAt", expireAfterSeconds=0, name="expires_ttl")
        await self.collection.create_index("patients", name="patients")
        self._indexes_ready = True

    async def _guarded(self, op: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            if not self._indexes_ready:
                await self._ensure_indexes()
            result = await call()
        except ConnectionFailure as exc:  # includes server selection timeouts and AutoReconnect
            self._mark_down(op, exc)
            return fallback
        except (PyMongoError, BSONError, OverflowError) as exc:  # this document or op, not the server
            log.warning("cache %s failed: %s (ignored)", op, type(exc).__name__)
            return fallback
        if self._status != "up":
            log.info("cache backend mongodb is up")
        self._status = "up"
        self._down_since = None
        return result

    def _mark_down(self, op: str, exc: Exception) -> None:
        if self._status != "down":
            log.warning("cache backend mongodb is down (%s during %s); serving from upstream", type(exc).__name__, op)
            self._down_since = self.clock()
        self._status = "down"
        self._last_error = type(exc).__name__
        self._down_until = time.monotonic() + PROBE_INTERVAL

    async def get(self, key: CacheKey) -> Document | None:
        doc = await self._guarded("get", lambda: self.collection.find_one(key.as_filter(), {"_id": 0}), None)
        # expiresAt is checked here rather than in the query: the lookup stays a pure
        # unique-index match, and the TTL monitor may not have swept yet.
        return None if doc is None or expired(doc, self.clock()) else doc

    async def put(self, doc: Document) -> None:
        key = CacheKey.of(doc).as_filter()
        patients = list(doc.get("patients") or ())

        async def replace() -> None:
            try:
                await self.collection.replace_one(key, doc, upsert=True)
            except DuplicateKeyError:
                # Two upserts raced to insert; the loser replaces the winner's document.
                await self.collection.replace_one(key, doc, upsert=True)
            if doc.get("requestedAt") is not None and patients and await self._purged_since_requested(doc, patients):
                # A purge ran while this copy was being fetched: after the write, so a purge
                # that deleted before it wrote left its tombstone first (server/cache/store.py).
                await self.collection.delete_one(key)

        await self._guarded("put", replace, None)

    async def _purged_since_requested(self, doc: Document, patients: list[str]) -> bool:
        tombstone = await self.collection.find_one(
            {
                "kind": TOMBSTONE_KIND,
                "type": "Patient",
                "key": {"$in": patients},
                "purgedAt": {"$gt": doc["requestedAt"]},
            },
            {"_id": 1},
        )
        return tombstone is not None

    async def delete(self, key: CacheKey) -> None:
        await self._guarded("delete", lambda: self.collection.delete_one(key.as_filter()), None)

    async def purge_patient(self, patient_id: str) -> int | None:
        async def purge() -> int | None:
            now = self.clock()
            tombstone = {"kind": TOMBSTONE_KIND, "type": "Patient", "key": patient_id, "scope": ""}
            # The tombstone first: a copy written after the delete below then finds it.
            stamped = {**tombstone, "purgedAt": now, "expiresAt": now + timedelta(seconds=TOMBSTONE_SECONDS)}
            try:
                await self.collection.replace_one(tombstone, stamped, upsert=True)
            except DuplicateKeyError:  # two purges of the patient raced to insert it
                await self.collection.replace_one(tombstone, stamped, upsert=True)
            return (await self.collection.delete_many({"patients": patient_id})).deleted_count

        return await self._guarded("purge", purge, None)

    async def health(self) -> dict[str, Any]:
        """Pings MongoDB (so the answer is current even with no traffic), then reports."""
        self._down_until = 0.0

        async def ping() -> None:
            await self.collection.database.command("ping")

        await self._guarded("ping", ping, None)
        out: dict[str, Any] = {
            "backend": self.backend,
            "status": self._status,
            "indexes": "ready" if self._indexes_ready else "pending",
        }
        if self._status == "down":
            out["lastError"] = self._last_error
            if self._down_since:
                out["downSince"] = self._down_since.isoformat()
        return out
