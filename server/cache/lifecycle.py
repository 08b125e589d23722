"""Open the configured cache inside the app lifespan, and close it on shutdown.

FACADE_MONGODB_URI set: the MongoDB store on the process's one AsyncMongoClient (opened by
server.mongodb, shared with the PAS store; indexes created at start-up, or on
reconnection when MongoDB is down at start), behind the worker's near cache
(server/cache/near.py) unless FACADE_CACHE_NEAR_SECONDS=0. Unset: the
bounded in-memory store. FACADE_CACHE_ENABLED=false: no cache at all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

from pymongo import AsyncMongoClient

from server.cache.memory import MemoryStore
from server.cache.mongo import COLLECTION, MongoStore
from server.cache.near import NearCachedStore
from server.cache.policy import CachePolicy
from server.cache.read_through import ReadThrough
from server.mongodb import Document, open_mongo_client
from server.settings import Settings

log = logging.getLogger("facade.cache")


@contextlib.asynccontextmanager
async def open_cache(
    settings: Settings, client: AsyncMongoClient[Document] | None = None, freshness: Mapping[str, float] | None = None
) -> AsyncIterator[ReadThrough | None]:
    """`client`: the shared client; None with a URI set opens (and closes) one here.
    `freshness`: seconds per type as the sources declare it (FACADE_CACHE_TTL_BY_TYPE wins)."""
    if not settings.cache_enabled:
        log.info("cache disabled: every read goes upstream")
        yield None
        return
    policy = CachePolicy.from_settings(settings, freshness or {})
    if not settings.mongodb_uri:
        log.info("cache: in memory (at most %d entries)", settings.cache_max_entries)
        yield ReadThrough(MemoryStore(settings.cache_max_entries), policy)
        return
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(open_mongo_client(settings))
        assert client is not None
        store = MongoStore(client[settings.mongodb_database][COLLECTION])
        await store.start()
        log.info(
            "cache: MongoDB, database %s (%s); near copies kept %.1f s",
            settings.mongodb_database,
            store.status,
            settings.cache_near_seconds,
        )
        near = settings.cache_near_seconds
        yield ReadThrough(NearCachedStore(store, near) if near > 0 else store, policy)
