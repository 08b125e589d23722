"""The process's one MongoDB client, opened in the app lifespan when FACADE_MONGODB_URI is
set and shared by everything that keeps data in MongoDB (the read-through cache and the
PAS store of record).

One client per process because an AsyncMongoClient is a connection pool plus server
monitors: a second one would double the connections and the monitoring traffic for no
gain. Nothing connects at import time; AsyncMongoClient itself connects lazily, so the
façade starts even while MongoDB is down (the cache then serves from upstream and the
PAS answers 503 until MongoDB is back; PyMongo reconnects by itself).

Credentials: the URI names the user, and the password comes from a file
(FACADE_MONGODB_PASSWORD_FILE, e.g. a compose secret), read once at start, so it never
sits in an environment variable, a compose file or a process listing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from pymongo import AsyncMongoClient

from server.settings import Settings

Document = dict[str, Any]


class _Credentials(TypedDict, total=False):
    """Keyword credentials for AsyncMongoClient; absent, not None, when there is no
    password (a keyword `password=None` would override the URI's own password)."""

    password: str


class MongoCredentialsError(RuntimeError):
    """The MongoDB password file and URI do not fit together; the façade does not start."""


def read_password(path: Path | None, uri: str) -> str | None:
    """The password in `path` (one trailing newline dropped: `echo` and editors add one),
    or None without a file. The URI must then name the user and carry no password."""
    if path is None:
        return None
    userinfo = urlsplit(uri)
    if not userinfo.username:
        raise MongoCredentialsError(
            "FACADE_MONGODB_PASSWORD_FILE is set but FACADE_MONGODB_URI names no user (mongodb://user@host/...)"
        )
    if userinfo.password is not None:
        raise MongoCredentialsError(
            "FACADE_MONGODB_URI carries a password and FACADE_MONGODB_PASSWORD_FILE is "
            "set: keep the password in the file only"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MongoCredentialsError(f"FACADE_MONGODB_PASSWORD_FILE cannot be read ({type(exc).__name__})") from None
    password = text.removesuffix("\n")  # text mode: "\r\n" already read as "\n"
    if not password:
        raise MongoCredentialsError("FACADE_MONGODB_PASSWORD_FILE is empty")
    return password


def create_client(uri: str, timeout_ms: int, password: str | None = None) -> AsyncMongoClient[Document]:
    """Short timeouts: a dead MongoDB must cost a request little. The cache answers from
    upstream instead; the PAS store fails fast with a 503 the caller can retry. A
    `password` goes with the user the URI names (PyMongo: keyword credentials win)."""
    credentials: _Credentials = {} if password is None else {"password": password}
    return AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(2 * timeout_ms, 1000),
        tz_aware=True,
        appname="nhs-fhir-facade",
        **credentials,
    )


@contextlib.asynccontextmanager
async def open_mongo_client(settings: Settings) -> AsyncIterator[AsyncMongoClient[Document] | None]:
    """The shared client when a MongoDB URI is configured, else None; closed on exit."""
    if not settings.mongodb_uri:
        yield None
        return
    password = read_password(settings.mongodb_password_file, settings.mongodb_uri)
    client = create_client(settings.mongodb_uri, settings.mongodb_timeout_ms, password)
    try:
        yield client
    finally:
        await client.close()
