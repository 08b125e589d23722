"""Search snapshots in MongoDB, so a page link works on any worker or replica.

The same contract as the in-process store (server.fhir.pages.Snapshots), chosen by the
composition root whenever FACADE_MONGODB_URI is set. One document per snapshot:

    _id        the page key (128 random bits, as in memory)
    owner      the searching caller's binding key: the handler answers anyone else 404
    body       zlib-compressed orjson of the request's paging view, the matches, the
               OperationOutcome, the `self` pairs and the scores (bytes: FHIR JSON keeps
               its exact shape, whatever BSON would make of it)
    createdAt  for the count bound (oldest first out)
    expiresAt  createdAt + page_snapshot_ttl: a TTL index deletes it eventually, every
               read checks it itself (the TTL monitor sweeps about once a minute)

Bounds: page_snapshot_ttl (age) and page_snapshot_limit (count, for the whole deployment
now: the oldest go first) as in memory, and MAX_BODY_BYTES per snapshot. MongoDB refuses
documents over 16 MiB; compressed FHIR JSON is several times smaller than the result the
worker already held in memory to make it, so a search whose compressed result still
exceeds 15 MiB is refused as too costly (422) rather than split across documents.

What a stored request keeps: the resource type and the result parameters paging reads
(_count, _summary, _elements, _include, _revinclude, _sort, _total). The parsed search
parameters are not kept: they were applied when the snapshot was made, and the `self`
link is rebuilt from the stored pairs.

MongoDB down: a snapshot is kept in this process's memory instead (its link then works on
this worker only, until MongoDB is back); a read MongoDB cannot answer is a miss (410).
Restricted patients: see server.fhir.pages (a snapshot answers only its owner, only what
they were allowed to see at search time, for at most the TTL).
"""

from __future__ import annotations

import logging
import secrets
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from bson.binary import Binary
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from server.fhir.errors import Unprocessable
from server.fhir.pages import Snapshot, Snapshots, SnapshotStore
from server.fhir.search_request import Include, SearchRequest, SortKey
from server.settings import Settings

log = logging.getLogger("facade.pages")

COLLECTION = "page_snapshots"
MAX_BODY_BYTES = 15 * 1024 * 1024  # under MongoDB's 16 MiB document limit, with room for the rest

Document = dict[str, Any]


class TooLargeToPage(Unprocessable):
    """The result is too big to keep for paging: the client must narrow the search."""

    issue_code = "too-costly"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _includes(items: Any) -> tuple[Include, ...]:
    return tuple(Include(str(s), str(p), None if t is None else str(t)) for s, p, t in items)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot's content as compressed JSON (the inverse of decode_snapshot)."""
    req = snapshot.request
    content = {
        "request": {
            "resourceType": req.resource_type,
            "count": req.count,
            "summary": req.summary,
            "elements": list(req.elements),
            "includes": [[i.source, i.param, i.target] for i in req.includes],
            "revIncludes": [[i.source, i.param, i.target] for i in req.rev_includes],
            "sort": [[s.param, s.descending] for s in req.sort],
            "total": req.total,
        },
        "matches": list(snapshot.matches),
        "outcome": snapshot.outcome,
        "selfPairs": [list(pair) for pair in snapshot.self_pairs],
        "scores": snapshot.scores,
    }
    return zlib.compress(orjson.dumps(content), 6)


def decode_snapshot(body: bytes, created: float, owner: str) -> Snapshot:
    content = orjson.loads(zlib.decompress(body))
    req = content["request"]
    request = SearchRequest(
        resource_type=req["resourceType"],
        count=int(req["count"]),
        summary=req["summary"],
        elements=tuple(req["elements"]),
        includes=_includes(req["includes"]),
        sort=tuple(SortKey(str(p), bool(d)) for p, d in req["sort"]),
        total=req["total"],
        rev_includes=_includes(req["revIncludes"]),
    )
    return Snapshot(
        request=request,
        matches=tuple(content["matches"]),
        outcome=content["outcome"],
        self_pairs=tuple((str(k), str(v)) for k, v in content["selfPairs"]),
        scores={str(k): float(v) for k, v in content["scores"].items()},
        created=created,
        owner=owner,
    )


class MongoSnapshotStore:
    """Search snapshots shared by every façade process on one MongoDB database."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        ttl: float,
        limit: int,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.collection = collection
        self.ttl = ttl
        self.limit = limit
        self.clock = clock
        self.local = SnapshotStore(ttl=ttl, limit=limit)  # while MongoDB is down
        self._indexes_ready = False

    async def start(self) -> None:
        """Create the indexes now if MongoDB answers; otherwise at the first write later."""
        try:
            await self._ensure_indexes()
        except PyMongoError as exc:
            log.warning("page snapshots: MongoDB indexes not created yet (%s)", type(exc).__name__)

    async def _ensure_indexes(self) -> None:
        await self.collection.create_index("expiresAt", expireAfterSeconds=0, name="expires_ttl")
        await self.collection.create_index([("createdAt", ASCENDING)], name="created")
        self._indexes_ready = True

    async def put(
        self,
        request: SearchRequest,
        matches: list[dict[str, Any]],
        outcome: dict[str, Any] | None,
        self_pairs: list[tuple[str, str]],
        scores: dict[str, float],
        *,
        owner: str,
    ) -> str:
        now = self.clock()
        snapshot = Snapshot(request, tuple(matches), outcome, tuple(self_pairs), dict(scores), now.timestamp(), owner)
        body = encode_snapshot(snapshot)
        if len(body) > MAX_BODY_BYTES:
            raise TooLargeToPage(
                f"{len(matches)} results are too many to page through; narrow the search (fewer matches)"
            )
        key = secrets.token_urlsafe(16)
        doc = {
            "_id": key,
            "owner": owner,
            "body": Binary(body),
            "createdAt": now,
            "expiresAt": now + timedelta(seconds=self.ttl),
        }
        try:
            if not self._indexes_ready:
                await self._ensure_indexes()
            await self.collection.insert_one(doc)
            await self._evict_oldest()
        except PyMongoError as exc:
            log.warning("page snapshot kept in this process only: MongoDB failed (%s)", type(exc).__name__)
            return await self.local.put(request, matches, outcome, self_pairs, scores, owner=owner)
        return key

    async def _evict_oldest(self) -> None:
        """Keep at most `limit` snapshots (the estimate counts expired, unswept ones too:
        they go first anyway, being the oldest)."""
        excess = await self.collection.estimated_document_count() - self.limit
        if excess <= 0:
            return
        oldest = self.collection.find({}, {"_id": 1}).sort("createdAt", ASCENDING).limit(excess)
        ids = [doc["_id"] async for doc in oldest]
        await self.collection.delete_many({"_id": {"$in": ids}})

    async def get(self, key: str) -> Snapshot | None:
        local = await self.local.get(key)
        if local is not None:
            return local
        try:
            doc = await self.collection.find_one({"_id": key})
        except PyMongoError as exc:
            log.warning("page snapshot unreadable: MongoDB failed (%s)", type(exc).__name__)
            return None
        if doc is None or _aware(doc["expiresAt"]) <= self.clock():
            return None
        return decode_snapshot(bytes(doc["body"]), _aware(doc["createdAt"]).timestamp(), str(doc["owner"]))


def _aware(moment: datetime) -> datetime:
    """The shared client decodes timezone-aware datetimes; a naive one is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


async def open_snapshots(settings: Settings, client: AsyncMongoClient[Document] | None) -> Snapshots:
    """MongoDB's store when the shared client exists (indexes created now if it answers),
    else this process's LRU."""
    if client is None:
        return SnapshotStore(ttl=settings.page_snapshot_ttl, limit=settings.page_snapshot_limit)
    store = MongoSnapshotStore(
        client[settings.mongodb_database][COLLECTION],
        ttl=settings.page_snapshot_ttl,
        limit=settings.page_snapshot_limit,
    )
    await store.start()
    return store
