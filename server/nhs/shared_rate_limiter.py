"""One NHS rate budget per API for the whole deployment, kept in MongoDB.

NHS limits are per app, not per process: PDS allows 5 requests/s whatever the number of
workers and replicas. So with MongoDB configured, every process takes its slots from one
document per API in one collection:

    {_id: "PDS", next: <ms since the epoch of the next free slot>}

One atomic find_one_and_update spaces requests evenly (burst 1, like the in-process
TokenBucket: Apigee spike arrest smooths the limit over the second): slot = max(now,
next); the caller gets it when it is no later than its request budget allows, and then
next = slot + 1/rate. A caller that would wait past its budget takes nothing and is
refused at once (NoSlot -> 503 with Retry-After), as with the in-process bucket.

Clocks: "now" is the MongoDB server's ($$NOW, in an update pipeline), so replicas whose
clocks disagree still share one timeline; a caller only sleeps for the difference the
server computed. Dates are kept as numbers of milliseconds (MongoDB 4.2 or later).

A cancelled waiter's slot is lost (it is not handed back): spacing errs on the slow side.
MongoDB down: this process falls back to its own TokenBucket for PROBE_INTERVAL seconds
at a time (the deployment may then exceed the rate by the number of processes; NHS's 429
is retried by the resilience layer), so an outage of the shared state never stops NHS
traffic. The collection is handed in by the composition root: the NHS layer reads no
settings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from server.nhs.deadline import Deadline
from server.nhs.rate_limiter import TokenBucket
from server.nhs.refusals import NoSlot

log = logging.getLogger("facade.upstream")

COLLECTION = "nhs_rate_budget"
PROBE_INTERVAL = 1.0  # seconds the local fallback is used before MongoDB is tried again


def reservation(interval_ms: float, max_wait_ms: float) -> list[dict[str, Any]]:
    """The update pipeline: take the next slot if it comes within max_wait_ms."""
    return [
        {"$set": {"now": {"$toLong": "$$NOW"}}},
        {"$set": {"slot": {"$max": [{"$ifNull": ["$next", 0]}, "$now"]}}},
        {"$set": {"granted": {"$lte": ["$slot", {"$add": ["$now", max_wait_ms]}]}}},
        {"$set": {"next": {"$cond": ["$granted", {"$add": ["$slot", interval_ms]}, "$slot"]}}},
    ]


class SharedTokenBucket:
    """`rate` requests per second for one NHS API across every process on one MongoDB."""

    def __init__(self, api: str, rate: float, collection: AsyncCollection[dict[str, Any]], local: TokenBucket) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.api = api
        self.rate = rate
        self.collection = collection
        self.local = local  # this process's own bucket, while MongoDB cannot be reached
        self.clock = local.clock
        self._down_until = 0.0

    async def acquire(self, deadline: Deadline) -> None:
        """Wait for our slot, or raise NoSlot when it comes after the deadline."""
        if time.monotonic() < self._down_until:
            await self.local.acquire(deadline)
            return
        remaining = deadline.remaining()
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                doc = await self._reserve(remaining)
        except (PyMongoError, TimeoutError) as exc:
            log.warning(
                "shared rate budget for %s unavailable (%s): this process limits itself",
                self.api,
                type(exc).__name__,
            )
            self._down_until = time.monotonic() + PROBE_INTERVAL
            await self.local.acquire(deadline)
            return
        wait = max(0.0, (float(doc["slot"]) - float(doc["now"])) / 1000)
        if not doc["granted"]:
            raise NoSlot(self.api, f"shared rate limit ({self.rate:g}/s) has no slot in time", retry_after=wait)
        if wait > 0:
            await self.clock.sleep(wait)

    async def _reserve(self, max_wait: float) -> dict[str, Any]:
        pipeline = reservation(1000 / self.rate, max(max_wait, 0.0) * 1000)
        for _ in range(2):  # two first-ever upserts may race on _id: the loser tries again
            try:
                doc = await self.collection.find_one_and_update(
                    {"_id": self.api}, pipeline, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:
                continue
            assert doc is not None  # upsert with AFTER always returns the document
            return doc
        raise DuplicateKeyError("shared rate budget document could not be created")
