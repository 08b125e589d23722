"""Where AuditEvents are kept: append-only, found by patient, agent, date, outcome, type.

Every access, allowed or refused, writes one AuditEvent (IHE BALP), and an access whose
event can be stored nowhere is refused (503, fail closed). Two implementations of one
protocol:

- `InMemoryAuditTrail`: sandbox and tests only. Bounded (oldest dropped), per process,
  lost on restart: it is no audit trail a deployment may rely on.
- `MongoAuditTrail`: the `audit_events` collection, insert only (never updated, never
  deleted by the façade), written with `w="majority", j=True` so an acknowledged event
  survives the loss of a node. When MongoDB cannot take an event it goes to the local
  spool (server.access.audit_spool), and while the spool holds this process's events,
  new ones follow them there, so they reach MongoDB in the order they were spooled. A
  background drainer inserts spooled events in order, with backoff while MongoDB is
  away; the event id is `_id`, so an event stored twice (sent, unacknowledged, then
  drained) is found once: a duplicate key means "already stored". If the spool cannot
  be written while it holds events, MongoDB is tried directly (stored out of spool
  order, which beats refusing); only when both fail is the access refused.
- No PyMongo call is ever cancelled: an append runs to its end even when its caller is
  cancelled (the access happened; it is recorded), and the drainer is asked to stop
  rather than cancelled. A PyMongo call cancelled while it waits for a server was seen
  to hang for ever (PyMongo 4.20, Python 3.11); the client's timeouts bound every call.

Errors:
    Exception
     └── AuditUnavailable   append: neither MongoDB nor the spool took the event;
                            find/get: the trail cannot be read now

Logs name event ids and counts only, never an event's content: audit events are PHI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
import sys
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

import bson
import orjson
from bson.errors import BSONError
from bson.raw_bson import RawBSONDocument
from pymongo import DESCENDING, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from server.access.access_record import AccessRecord
from server.access.audit_index import index_fields
from server.access.audit_spool import AuditSpool
from server.held_json import exact_size

log = logging.getLogger("facade.audit.trail")

Event = dict[str, Any]
Document = dict[str, Any]
COLLECTION = "audit_events"
DEFAULT_FIND_LIMIT = 1000
DUPLICATE_KEY = 11000


class AuditUnavailable(Exception):
    """The audit trail cannot do what was asked: the access is refused (503)."""


class AuditTrail(Protocol):
    """What the audit middleware writes to and the AuditEvent provider reads from."""

    backend: str

    async def start(self) -> None:
        """Open what the trail needs; never fails because MongoDB is down."""

    async def append(self, event: Event) -> None:
        """Store one complete AuditEvent exactly once. Raises AuditUnavailable only when
        it could be stored nowhere; ValueError when it is no AuditEvent (no id, no
        instant in `recorded`)."""

    async def record(self, access: AccessRecord) -> None:
        """Store the AuditEvent of one access (`access.event()`) exactly once; raises as
        append does. A store may keep the record and build the event when it is read."""

    async def find(
        self,
        *,
        patient: str | None = None,
        agent: str | None = None,
        recorded_from: datetime | None = None,
        recorded_to: datetime | None = None,
        outcome: str | None = None,
        types: Iterable[str] = (),
        limit: int = DEFAULT_FIND_LIMIT,
    ) -> list[Event]:
        """Stored events, newest `recorded` first, at most `limit`. Filters are AND-ed:
        `patient` is `Patient/{id}`, `agent` an agent identifier value or reference,
        recorded_from <= recorded < recorded_to, `types` any of these type/subtype codes
        (see server.access.audit_index). Raises AuditUnavailable when it cannot read."""

    async def get(self, event_id: str) -> Event | None:
        """One stored event by id, None when unknown; AuditUnavailable when it cannot read."""

    def status(self) -> str:
        """ "ok", "spooling" (events wait in the spool for MongoDB) or "degraded"."""

    async def aclose(self) -> None:
        """Stop background work and release files."""


def _validated_fields(event: Event) -> dict[str, Any]:
    """The index fields of an event every store can keep; ValueError for anything else."""
    return _validated(event)[0]


def _validated(event: Event) -> tuple[dict[str, Any], bytes]:
    """The index fields and the JSON of an event every store can keep; ValueError for
    anything else."""
    if not isinstance(event, dict) or event.get("resourceType") != "AuditEvent":
        raise ValueError("not an AuditEvent")
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise ValueError("an AuditEvent needs an id before it is stored (it makes storing idempotent)")
    try:
        body = orjson.dumps(event)  # the spool keeps JSON lines: what JSON cannot hold must fail here, not there
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"an AuditEvent must be JSON ({exc})") from None
    return index_fields(event), body


# One event as the in-memory trail holds it: (recorded, outcome, patients, agents, types,
# content), the content being the event's JSON (append) or the access it is built from
# (record). A plain tuple (a tuple subclass would not do) of strings, tuples and bytes:
# the collector stops tracking one that holds JSON after its first pass, and it is
# smaller than the index-fields dict and lists it replaces.
Held = tuple[datetime, str | None, tuple[str, ...], tuple[str, ...], tuple[str, ...], bytes | AccessRecord]


def _held(fields: dict[str, Any], content: bytes | AccessRecord) -> Held:
    return (
        fields["recorded"],
        fields["outcome"],
        _shared(fields["patients"]),
        _shared(fields["agents"]),
        _shared(fields["types"]),
        content,
    )


def _shared(values: list[str]) -> tuple[str, ...]:
    """Agents and types repeat across nearly every event (one caller, one interaction) and
    patients often do: each distinct text is held once, and freed with the last event
    naming it (sys.intern keeps no text alive)."""
    return tuple(sys.intern(v) for v in values)


def _event_held(held: Held) -> Event:
    """A fresh copy of a held event: decoded from its JSON, or built from its access."""
    content = held[5]
    if isinstance(content, AccessRecord):
        return content.event()
    event: Event = orjson.loads(content)
    return event


def _wanted(
    held: Held,
    patient: str | None,
    agent: str | None,
    recorded_from: datetime | None,
    recorded_to: datetime | None,
    outcome: str | None,
    types: tuple[str, ...],
) -> bool:
    """The find() filters on index fields, as MongoAuditTrail's query applies them."""
    recorded, held_outcome, patients, agents, held_types, _ = held
    return (
        (patient is None or patient in patients)
        and (agent is None or agent in agents)
        and (recorded_from is None or recorded >= recorded_from)
        and (recorded_to is None or recorded < recorded_to)
        and (outcome is None or held_outcome == outcome)
        and (not types or any(t in held_types for t in types))
    )


class InMemoryAuditTrail:
    """Sandbox only: at most `max_events` per process (the oldest are dropped, with a
    warning), gone on restart. A deployment keeps its audit trail in MongoDB.

    10,000 by default. The façade's own accesses come as records (`record`): kept as they
    are, about 1.1 KB each with their index fields, and built into AuditEvents only when
    read (server/access/access_record.py says why). An event appended whole is kept as
    its JSON, about 2.9 KB (2.3 KB of JSON at its own size, server/held_json.py). So a
    sandbox serving for hours stays within 11-30 MB of trail (a worker's RSS target,
    issue 11, is 150 MB)."""

    backend = "memory"

    def __init__(self, max_events: int = 10_000) -> None:
        self.max_events = max_events
        self._events: OrderedDict[str, Held] = OrderedDict()
        self.dropped = 0

    async def start(self) -> None:
        return None

    async def append(self, event: Event) -> None:
        fields, body = _validated(event)
        # A copy the caller cannot change, at its own size (server/held_json.py).
        self._keep(event["id"], _held(fields, exact_size(body)))

    async def record(self, access: AccessRecord) -> None:
        self._keep(access.event_id, _held(access.index_fields(), access))

    def _keep(self, event_id: str, held: Held) -> None:
        if event_id in self._events:
            return  # stored already: exactly once
        self._events[event_id] = held
        while len(self._events) > self.max_events:
            self._events.popitem(last=False)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("in-memory audit trail full: %d oldest events dropped so far", self.dropped)

    async def find(
        self,
        *,
        patient: str | None = None,
        agent: str | None = None,
        recorded_from: datetime | None = None,
        recorded_to: datetime | None = None,
        outcome: str | None = None,
        types: Iterable[str] = (),
        limit: int = DEFAULT_FIND_LIMIT,
    ) -> list[Event]:
        wanted = tuple(types)
        # Newest appended first, then a stable sort: equal instants stay newest-first.
        hits = [
            held
            for held in reversed(self._events.values())
            if _wanted(held, patient, agent, recorded_from, recorded_to, outcome, wanted)
        ]
        hits.sort(key=lambda held: held[0], reverse=True)
        return [_event_held(held) for held in hits[:limit]]

    async def get(self, event_id: str) -> Event | None:
        stored = self._events.get(event_id)
        return _event_held(stored) if stored else None

    def status(self) -> str:
        return "ok"

    async def aclose(self) -> None:
        return None


def _document(event: Event, fields: dict[str, Any]) -> RawBSONDocument:
    """The stored document: `{_id: id, event, **index fields}`, encoded once. An event JSON
    can hold but BSON cannot (an unsigned 64-bit integer, a NUL in a key) is kept as its
    JSON text in `eventJson` instead, so it is stored all the same and never blocks the
    drain. Encoded here, where that is checked, and handed to PyMongo as raw BSON, which it
    sends as it is (a dict it would encode a second time, on every request's event)."""
    doc = {"_id": event["id"], "event": event, **fields}
    try:
        return RawBSONDocument(bson.encode(doc))
    except (BSONError, OverflowError):
        log.warning("audit event %s kept as JSON text: BSON cannot hold one of its values", event["id"])
        return RawBSONDocument(bson.encode({"_id": event["id"], "eventJson": orjson.dumps(event).decode(), **fields}))


def _event_of(doc: Document) -> Event:
    if "eventJson" in doc:
        stored: Event = orjson.loads(doc["eventJson"])
        return stored
    event: Event = doc["event"]
    return event


class MongoAuditTrail:
    """The audit trail in MongoDB, with the local spool for when MongoDB cannot take an event."""

    backend = "mongodb"

    def __init__(
        self,
        db: AsyncDatabase[Document],
        spool: AuditSpool,
        *,
        collection: str = COLLECTION,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
        batch_size: int = 500,
        orphan_scan_interval: float = 30.0,
        close_timeout: float = 2.0,
    ) -> None:
        self.collection: AsyncCollection[Document] = db.get_collection(
            collection, write_concern=WriteConcern(w="majority", j=True)
        )
        self.spool = spool
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.batch_size = batch_size
        self.orphan_scan_interval = orphan_scan_interval
        self.close_timeout = close_timeout
        self._indexes_ready = False
        self._mongo_ok = True
        self._spool_ok = True
        self._wake = asyncio.Event()  # set by a spooled append (and on stop)
        self._stopped = asyncio.Event()
        self._stopping = False
        self._drainer: asyncio.Task[None] | None = None
        self._batch: list[tuple[RawBSONDocument, asyncio.Future[None]]] = []  # waiting for the next insert
        self._committer: asyncio.Future[None] | None = None
        self._writes: set[asyncio.Future[None]] = set()  # appends in progress, awaited by aclose

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Indexes, this process's spool file, files left by dead processes, the drainer.
        MongoDB down or the spool unusable does not stop the façade: both are tried again
        (the indexes by the drainer, the spool on the next event that needs it)."""
        await self.ensure_indexes()
        try:
            await self.spool.open()
            await self.spool.claim_orphans()
        except OSError as exc:
            self._spool_ok = False
            log.error(
                "audit spool %s unusable (%s): while MongoDB is down, every access is refused",
                self.spool.directory,
                type(exc).__name__,
            )
        self._drainer = asyncio.create_task(self._drain_forever(), name="audit-drainer")

    async def ensure_indexes(self) -> bool:
        """Create the search indexes; False (logged) when MongoDB does not answer."""
        try:
            await self._create_indexes()
        except PyMongoError as exc:
            self._mongo_ok = False
            log.warning(
                "audit trail: MongoDB not reachable for indexes (%s); retried in the background", type(exc).__name__
            )
            return False
        return True

    async def _create_indexes(self) -> None:
        await self.collection.create_index([("patients", 1), ("recorded", DESCENDING)], name="patients_recorded")
        await self.collection.create_index([("agents", 1), ("recorded", DESCENDING)], name="agents_recorded")
        await self.collection.create_index([("recorded", DESCENDING)], name="recorded")
        self._indexes_ready = True
        self._mongo_ok = True

    async def aclose(self) -> None:
        """Stop the drainer, try one last drain (for at most `close_timeout`), release the
        spool. What is left stays in the spool file for the next process.

        The drainer is asked to stop, never cancelled: a PyMongo call cancelled while it
        waits for a server was seen to leave the task hanging (PyMongo 4.20, Python 3.11),
        and every call here is bounded by the client's own timeouts anyway."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._drainer is not None:
            await self._drainer
            self._drainer = None
        if self.spool.has_pending():
            loop = asyncio.get_running_loop()
            try:
                await self._drain_spool(until=loop.time() + self.close_timeout)
            except (PyMongoError, OSError) as exc:
                log.warning("audit trail: spooled events left for the next start (%s)", type(exc).__name__)
        await self.spool.aclose()

    # --- writing ----------------------------------------------------------------------

    async def append(self, event: Event) -> None:
        """Store in MongoDB, else in the spool (see the module docstring). Runs to the end
        even when the caller is cancelled (a client that hung up): the access happened and
        is recorded, and no PyMongo call is cancelled midway (see aclose)."""
        await self._write(event, _document(event, _validated_fields(event)))

    async def record(self, access: AccessRecord) -> None:
        """The event is built and stored at once: MongoDB keeps the AuditEvent itself. Its
        index fields come from the record (equal to those of the event, and cheaper)."""
        event = access.event()
        await self._write(event, _document(event, access.index_fields()))

    async def _write(self, event: Event, doc: RawBSONDocument) -> None:
        write = asyncio.ensure_future(self._store(event, doc))
        self._writes.add(write)
        write.add_done_callback(self._write_done)
        await asyncio.shield(write)

    def _write_done(self, write: asyncio.Future[None]) -> None:
        self._writes.discard(write)
        if not write.cancelled():
            write.exception()  # retrieved: a caller that was cancelled never reads it

    async def _store(self, event: Event, doc: RawBSONDocument) -> None:
        tried_mongo = False
        if not self.spool.holds_own_events():
            tried_mongo = True
            try:
                await self._insert(doc)
                return
            except PyMongoError as exc:
                log.warning("audit event %s spooled: MongoDB failed (%s)", event["id"], type(exc).__name__)
        try:
            await self.spool.append(event)
        except OSError as exc:
            self._spool_ok = False
            log.error("audit event %s: spool write failed (%s)", event["id"], type(exc).__name__)
            if not tried_mongo:  # out of spool order, but stored: better than refusing
                with contextlib.suppress(PyMongoError):
                    await self._insert(doc)
                    return
            raise AuditUnavailable("the audit trail cannot store events (MongoDB and the local spool failed)") from None
        self._spool_ok = True
        self._wake.set()

    async def _insert(self, doc: RawBSONDocument) -> None:
        """Insert one event, group-committed: while one write is on its way to MongoDB, the
        events arriving meanwhile wait and go together in the next (one round trip and one
        majority/journal acknowledgement for many requests, where one each cost the cached
        read path most of its time). Each caller still waits for its own event's outcome."""
        outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append((doc, outcome))
        if self._committer is None:
            self._committer = asyncio.ensure_future(self._commit_batches())
        await outcome

    async def _commit_batches(self) -> None:
        try:
            while self._batch:
                batch, self._batch = self._batch[: self.batch_size], self._batch[self.batch_size :]
                try:
                    failures = await self._insert_batch([doc for doc, _ in batch])
                except Exception as exc:  # never leave a caller waiting for ever
                    failures = [exc] * len(batch)
                for (_, outcome), failure in zip(batch, failures, strict=True):
                    if outcome.done():
                        continue
                    if failure is None:
                        outcome.set_result(None)
                    else:
                        outcome.set_exception(failure)
        finally:
            self._committer = None

    async def _insert_batch(self, docs: list[RawBSONDocument]) -> list[Exception | None]:
        """Each document's failure, or None when it is stored. A duplicate id counts as
        stored: an earlier attempt reached MongoDB unacknowledged."""
        try:
            if len(docs) == 1:
                await self.collection.insert_one(docs[0])
            else:
                await self.collection.insert_many(docs, ordered=False)
        except DuplicateKeyError:
            pass
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                self._mongo_ok = False
                return [exc] * len(docs)  # written, perhaps, but not confirmed: spool them (ids dedupe)
            failed = {e["index"] for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY}
            self._mongo_ok = not failed
            return [exc if i in failed else None for i in range(len(docs))]
        except PyMongoError as exc:
            self._mongo_ok = False
            return [exc] * len(docs)
        self._mongo_ok = True
        return [None] * len(docs)

    # --- reading ----------------------------------------------------------------------

    async def find(
        self,
        *,
        patient: str | None = None,
        agent: str | None = None,
        recorded_from: datetime | None = None,
        recorded_to: datetime | None = None,
        outcome: str | None = None,
        types: Iterable[str] = (),
        limit: int = DEFAULT_FIND_LIMIT,
    ) -> list[Event]:
        query: Document = {}
        if patient is not None:
            query["patients"] = patient
        if agent is not None:
            query["agents"] = agent
        if recorded_from is not None or recorded_to is not None:
            query["recorded"] = {k: v for k, v in (("$gte", recorded_from), ("$lt", recorded_to)) if v is not None}
        if outcome is not None:
            query["outcome"] = outcome
        if wanted := list(types):
            query["types"] = {"$in": wanted}
        try:
            cursor = self.collection.find(query, {"event": 1, "eventJson": 1})
            docs = await cursor.sort([("recorded", DESCENDING), ("_id", DESCENDING)]).limit(limit).to_list(None)
        except PyMongoError as exc:
            log.warning("audit trail: search failed (%s)", type(exc).__name__)
            raise AuditUnavailable("the audit trail cannot be searched now") from None
        return [_event_of(doc) for doc in docs]

    async def get(self, event_id: str) -> Event | None:
        try:
            doc = await self.collection.find_one({"_id": event_id}, {"event": 1, "eventJson": 1})
        except PyMongoError as exc:
            log.warning("audit trail: read failed (%s)", type(exc).__name__)
            raise AuditUnavailable("the audit trail cannot be read now") from None
        return _event_of(doc) if doc is not None else None

    def status(self) -> str:
        """ "spooling" while events wait in the spool; "degraded" when MongoDB failed last
        time it was asked (nothing spooled) or the spool cannot be written; else "ok"."""
        if self.spool.has_pending():
            return "spooling"
        if not (self._mongo_ok and self._spool_ok):
            return "degraded"
        return "ok"

    # --- draining ---------------------------------------------------------------------

    async def _drain_forever(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.retry_initial
        next_scan = loop.time() + self.orphan_scan_interval
        failing = False
        while not self._stopping:
            self._wake.clear()
            try:
                if not self._indexes_ready:
                    await self._create_indexes()
                drained = await self._drain_spool()
            except Exception as exc:  # the drainer must outlive any one failure, whatever it is
                if isinstance(exc, PyMongoError):
                    self._mongo_ok = False
                if not failing:
                    log.log(
                        logging.WARNING if isinstance(exc, (PyMongoError, OSError)) else logging.ERROR,
                        "audit drain paused: %s; retrying with backoff",
                        type(exc).__name__,
                    )
                failing = True
                await self._sleep(random.uniform(delay / 2, delay), self._stopped)
                delay = min(delay * 2, self.retry_max)
                continue
            if failing or drained:
                log.info("audit drain: %d spooled event(s) stored in MongoDB", drained)
            failing, delay = False, self.retry_initial
            if self.spool.has_pending() or self._stopping:
                continue
            await self._sleep(max(0.0, next_scan - loop.time()), self._wake)
            if loop.time() >= next_scan:
                next_scan = loop.time() + self.orphan_scan_interval
                await self._housekeeping()

    async def _housekeeping(self) -> None:
        """Now and then: take over files of workers that died, and retry a spool that
        could not be opened at start (a directory created or mounted since)."""
        with contextlib.suppress(OSError):
            if not self._spool_ok and not self.spool.is_open:
                await self.spool.open()
                self._spool_ok = True
                log.info("audit spool %s usable again", self.spool.directory)
            await self.spool.claim_orphans()

    @staticmethod
    async def _sleep(seconds: float, until: asyncio.Event) -> None:
        """Sleep, or less when `until` is set (it only ever waits on an Event, so the
        timeout never cancels a PyMongo call)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), seconds)

    async def _drain_spool(self, until: float | None = None) -> int:
        """Insert spooled events in spool order until none is left (or, given `until`, no
        new batch after that loop time); returns how many. Progress is committed batch by
        batch, also when a batch fails part way."""
        loop = asyncio.get_running_loop()
        total = 0
        while until is None or loop.time() < until:
            batch = await self.spool.next_batch(self.batch_size)
            if batch is None:
                break
            docs = [self._spooled_document(event) for event in batch.events]
            progress = _Progress()
            try:
                await self._insert_in_order(docs, progress)
            finally:
                await self.spool.commit(batch, progress.done)
            total += sum(1 for doc in docs if doc is not None)
            self._mongo_ok = True
        return total

    @staticmethod
    def _spooled_document(event: Event) -> RawBSONDocument | None:
        try:
            return _document(event, _validated_fields(event))
        except ValueError:  # a hand-edited or damaged file: never let it block the drain
            log.error("audit spool: event %s skipped (not a storable AuditEvent)", event.get("id"))
            return None

    async def _insert_in_order(self, docs: list[RawBSONDocument | None], progress: _Progress) -> None:
        """Insert `docs` in order, moving `progress.done` past each one now in MongoDB (a
        duplicate id counts: it was there already) or skipped (None). An ordered insert
        stops at its first error, so everything before that error went in."""
        while progress.done < len(docs):
            if docs[progress.done] is None:
                progress.done += 1
                continue
            run = [
                doc
                for doc in itertools.takewhile(lambda doc: doc is not None, docs[progress.done :])
                if doc is not None
            ]
            try:
                await self.collection.insert_many(run, ordered=True)
                progress.done += len(run)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                if not errors:  # only the write concern failed: retried later, then found as duplicates
                    raise
                progress.done += errors[0]["index"]
                if errors[0].get("code") != DUPLICATE_KEY:
                    raise
                progress.done += 1


@dataclasses.dataclass
class _Progress:
    """How many events of a drain batch, from the front, are in MongoDB (or skipped)."""

    done: int = 0
