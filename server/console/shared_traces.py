"""The console's traces shared through MongoDB, so any worker or replica can show any trace.

Why: a deployment runs several Granian workers and replicas behind a load balancer. Each
keeps its recent traces in memory (server.request_trace.TraceBuffer), so a console asking
for a request's trace lands on a worker that never saw it half the time. With
FACADE_MONGODB_URI set, each finished trace is also written to one collection, and a
trace not in this worker's memory is looked up there.

What is written is the trace as the console serves it (Trace.as_json): in live mode it is
already redacted, because a trace is redacted as it is recorded, never after. Writes run
after the response has gone, in a task of their own, and a failure loses the shared copy
only (a warning, by type): the request is never failed or slowed for it. The collection
keeps a trace at most TRACE_SECONDS (a TTL index) and at most about `capacity` traces
(older ones are deleted every so often), like the per-process ring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

log = logging.getLogger("facade.console")

COLLECTION = "console_traces"
TRACE_SECONDS = 3600.0  # a trace is for looking at what just happened
TRIM_EVERY = 100  # writes between trims of the collection to `capacity`
SUMMARY_FIELDS = ("request_id", "started", "method", "path", "query", "status", "duration_ms", "redacted")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SharedTraces:
    def __init__(
        self, collection: AsyncCollection[dict[str, Any]], capacity: int, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.collection = collection
        self.capacity = capacity
        self.clock = clock
        self._writes: set[asyncio.Task[None]] = set()
        self._since_trim = 0
        self._indexed = False

    def keep(self, trace_json: dict[str, Any]) -> None:
        """Write a finished trace in the background (called after its response is sent)."""
        task = asyncio.get_running_loop().create_task(self._write(trace_json))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, trace_json: dict[str, Any]) -> None:
        now = self.clock()
        document = {
            "_id": trace_json["request_id"],
            "at": now,
            "expiresAt": now + timedelta(seconds=TRACE_SECONDS),
            "summary": {**{k: trace_json.get(k) for k in SUMMARY_FIELDS}, "events": len(trace_json["events"])},
            "trace": trace_json,
        }
        try:
            if not self._indexed:
                await self.collection.create_index("expiresAt", expireAfterSeconds=0, name="expires_ttl")
                await self.collection.create_index([("at", DESCENDING)], name="newest")
                self._indexed = True
            await self.collection.replace_one({"_id": document["_id"]}, document, upsert=True)
            self._since_trim += 1
            if self._since_trim >= TRIM_EVERY:
                self._since_trim = 0
                await self._trim()
        except PyMongoError as exc:
            log.warning("console trace not shared: %s", type(exc).__name__)

    async def _trim(self) -> None:
        """Keep about `capacity`: delete what is older than the capacity-th newest."""
        cursor = self.collection.find({}, {"at": 1}).sort("at", DESCENDING).skip(self.capacity).limit(1)
        oldest_kept = await cursor.to_list(1)
        if oldest_kept:
            await self.collection.delete_many({"at": {"$lte": oldest_kept[0]["at"]}})

    async def get(self, request_id: str) -> dict[str, Any] | None:
        """A trace by request id, None when unknown or MongoDB cannot answer."""
        try:
            found = await self.collection.find_one({"_id": request_id}, {"trace": 1})
        except PyMongoError as exc:
            log.warning("console trace lookup failed: %s", type(exc).__name__)
            return None
        if found is None:
            return None
        trace: dict[str, Any] = found["trace"]
        return trace

    async def recent(self, limit: int) -> list[dict[str, Any]] | None:
        """Summaries, newest first; None when MongoDB cannot answer (the caller falls back
        to this worker's own)."""
        try:
            cursor = self.collection.find({}, {"summary": 1}).sort("at", DESCENDING).limit(limit)
            return [d["summary"] for d in await cursor.to_list(limit)]
        except PyMongoError as exc:
            log.warning("console trace list failed: %s", type(exc).__name__)
            return None

    async def aclose(self) -> None:
        """Let writes in flight finish (the lifespan closes the client after this)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
