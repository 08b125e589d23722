"""The process's one MongoDB client, opened in the app lifespan when FACADE_MONGODB_URI is
set and shared by everything that keeps data in MongoDB (the read-through cache and the
PAS store of record).

One client per process because an AsyncMongoClient is a connection pool plus server
monitors: a second one would double the connections and the monitoring traffic for no
gain. Nothing connects at import time; AsyncMongoClient itself connects lazily, so the
façade starts even while MongoDB is down (the cache then serves from upstream and the
PAS answers 503 until MongoDB is back; PyMongo reconnects by itself).
"""
from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

from pymongo import AsyncMongoClient

from server.settings import Settings

Document = dict[str, Any]


def create_client(uri: str, timeout_ms: int) -> AsyncMongoClient[Document]:
    """Short timeouts: a dead MongoDB must cost a request little. The cache answers from
    upstream instead; the PAS store fails fast with a 503 the caller can retry."""
    return AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(2 * timeout_ms, 1000),
        tz_aware=True,
        appname="nhs-fhir-facade",
    )


@contextlib.asynccontextmanager
async def open_mongo_client(settings: Settings) -> AsyncIterator[AsyncMongoClient[Document] | None]:
    """The shared client when a MongoDB URI is configured, else None; closed on exit."""
    if not settings.mongodb_uri:
        yield None
        return
    client = create_client(settings.mongodb_uri, settings.mongodb_timeout_ms)
    try:
        yield client
    finally:
        await client.close()
