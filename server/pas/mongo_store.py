"""The PAS store of record in MongoDB, on PyMongo's async API (AsyncMongoClient; never Motor).

Used when FACADE_MONGODB_URI is set, on the process's one client (server.mongodb).
Collection `pas_patients`, one document per hospital number:

    {_id: "H123", record: {...canonical PAS record...}, allergies: [...], medications: [...],
     version: 3, updated: "2026-03-01T09:30:00+00:00",
     pdsSecurity: {code: "R", nhsNumber: "9000000025", confirmed: "2026-03-01T09:30:00+00:00"}}

and one alias document per number merged away by HL7 A40:

    {_id: "H122", aliasOf: "H123", merged: "..."}

Why it is shaped like this:
- Every write is acknowledged only once a majority of the replica set has it in its
  journal (`w: "majority", j: true`): this is the only copy of a hospital's
  registrations, and a write acknowledged by a primary alone, which then fails and rolls
  the write back when it rejoins, would be a registration lost after the PAS was told
  201/AA. The write concern is set on the collection by `pas_collection`, which is how
  the app opens it (the store uses the collection it is given, so tests can wrap one to
  inject faults). `wtimeout` bounds the wait: a write whose majority did not answer in
  time is reported as unconfirmed (503/AR, "read before repeating"), never as done.
- `pdsSecurity` is PDS's last answer about the patient's confidentiality (absent = never
  confirmed: the PAS then withholds what a restricted record would, server.pas.restriction).
  It is set by one `$set` that neither bumps the version nor touches the record, and only
  while `record.nhsNumber` is still the number PDS was asked about; a write that learnt
  nothing from PDS leaves it as it is.
- The hospital number is `_id`, so MongoDB's own unique `_id` index is the unique index
  on hospital numbers, and it covers aliases too: a merged-away number can never be
  registered again (as in PDS, a superseded number stays superseded). Non-unique indexes
  on `record.nhsNumber` (FHIR searches by NHS number) and `aliasOf` (sparse).
- No TTL index: this is a store of record, not a cache. Nothing here ever expires.
- Every write is one atomic single-document operation. Optimistic concurrency is done
  by MongoDB, not by a read-then-write here: a versioned update is
  `find_one_and_update({_id, version: expected}, {$set ..., $inc: {version: 1}})`, so of
  two PUTs carrying the same If-Match exactly one matches; the other finds no document
  and becomes a 412. Unconditional (HL7) updates drop the version from the filter and
  still `$inc` it, so versions stay strictly increasing.
- A merge touches two documents and a standalone mongod has no transactions, so it is
  ordered to be safe when interrupted: first the survivor gets the joined lists (guarded
  by its version), then the merged-away record becomes an alias (guarded by its
  version). Joining is idempotent (server.pas.store.merged_data), so if MongoDB fails
  between the two steps nothing is lost and resending the A40 completes the merge.
- Failures are never swallowed (contrast server.cache.mongo): every driver error becomes
  `StoreUnavailable`, logged by exception type only (driver messages can quote keys, and
  keys are hospital numbers), and the PAS answers 503/AR. No "down" back-off window
  either: each request tries MongoDB (costing at most the short server-selection
  timeout), so the store is usable again the moment MongoDB is.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bson.errors import BSONError
from pymongo import ASCENDING, ReturnDocument, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError, ServerSelectionTimeoutError

from server.pas.store import (
    AlreadyExists,
    PatientData,
    PDSSecurity,
    StoredPatient,
    StoreUnavailable,
    UnknownPatient,
    VersionConflict,
    merged_data,
    now_iso,
)

log = logging.getLogger("facade.pas.store")

COLLECTION = "pas_patients"
MAX_ALIAS_HOPS = 32  # A40 chains (A into B, later B into C) are followed this far
MERGE_ATTEMPTS = 3  # a merge racing a PUT on either record re-reads and tries again
# The store of record's durability: a majority of the replica set, journaled. A healthy set
# confirms in milliseconds; 5 s is for a set that lost a member, not a normal wait.
WRITE_CONCERN = WriteConcern(w="majority", j=True, wtimeout=5000)
T = TypeVar("T")
Document = dict[str, Any]
LIVE = {"aliasOf": {"$exists": False}}


def pas_collection(database: AsyncDatabase[Document]) -> AsyncCollection[Document]:
    """The `pas_patients` collection with the store of record's write concern."""
    return database.get_collection(COLLECTION, write_concern=WRITE_CONCERN)


def _stored(doc: Document) -> StoredPatient:
    return StoredPatient(
        doc["_id"],
        doc["record"],
        doc["version"],
        doc["updated"],
        tuple(doc.get("allergies") or ()),
        tuple(doc.get("medications") or ()),
        PDSSecurity.from_document(doc.get("pdsSecurity")),
    )


def _fields(hn: str, data: PatientData) -> Document:
    """The stored fields of a write (copied: the caller's data is never shared). PDS's
    confidentiality only when the write learnt it: otherwise the stored one stays."""
    fields: Document = {
        "record": {**data.record, "hospitalNumber": hn},
        "allergies": list(data.allergies),
        "medications": list(data.medications),
        "updated": now_iso(),
    }
    if data.pds_security is not None:
        fields["pdsSecurity"] = data.pds_security.to_document()
    return copy.deepcopy(fields)


class MongoPASStore:
    """The PASStore protocol on one MongoDB collection; see the module docstring."""

    backend = "mongodb"

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection
        self._indexes_ready = False

    async def start(self) -> None:
        """Create the indexes now if MongoDB answers. A MongoDB that is down at start-up
        does not stop the façade: the indexes are made before the first operation that
        succeeds, and PAS requests answer 503 until then."""
        try:
            await self._guarded("start", self._noop)
        except StoreUnavailable:
            log.warning("pas store: MongoDB not reachable at start-up; PAS requests answer 503 until it is")

    async def _noop(self) -> None:
        return None

    async def _ensure_indexes(self) -> None:
        # Uniqueness of hospital numbers needs no index of ours: it is _id.
        await self.collection.create_index([("record.nhsNumber", ASCENDING)], name="nhs_number")
        await self.collection.create_index([("aliasOf", ASCENDING)], name="alias_of", sparse=True)
        self._indexes_ready = True

    async def _guarded(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one operation; a driver failure becomes StoreUnavailable (never a 500)."""
        try:
            if not self._indexes_ready:
                await self._ensure_indexes()
            return await call()
        except DuplicateKeyError:
            raise  # not an outage: the caller turns it into AlreadyExists
        except ServerSelectionTimeoutError as exc:  # no server: the operation was never sent
            log.warning("pas store %s failed: %s", op, type(exc).__name__)
            raise StoreUnavailable(op, type(exc).__name__, confirmed_not_written=True) from None
        except (PyMongoError, BSONError, OverflowError) as exc:  # sent, but not confirmed
            log.warning("pas store %s failed: %s", op, type(exc).__name__)
            raise StoreUnavailable(op, type(exc).__name__, confirmed_not_written=False) from None

    async def _live(self, op: str, hospital_number: str) -> Document | None:
        """The record a hospital number names, following merge aliases; None if unknown."""
        seen: set[str] = set()
        hn = hospital_number
        for _ in range(MAX_ALIAS_HOPS):
            doc = await self._guarded(op, lambda: self.collection.find_one({"_id": hn}))
            if doc is None or "aliasOf" not in doc:
                return doc
            seen.add(hn)
            hn = doc["aliasOf"]
            if hn in seen:
                return None
        return None

    async def create(self, data: PatientData) -> StoredPatient:
        hn = data.record["hospitalNumber"]
        doc = {"_id": hn, **_fields(hn, data), "version": 1}
        try:
            await self._guarded("create", lambda: self.collection.insert_one(doc))
        except DuplicateKeyError:
            raise AlreadyExists(hn) from None
        return _stored(doc)

    async def get(self, hospital_number: str) -> StoredPatient | None:
        doc = await self._live("get", hospital_number)
        return _stored(doc) if doc else None

    async def replace(self, hospital_number: str, data: PatientData, *, expected_version: int | None) -> StoredPatient:
        current = await self._live("replace", hospital_number)
        if current is None:
            raise UnknownPatient(hospital_number)
        hn = current["_id"]
        query: Document = {"_id": hn, **LIVE}
        if expected_version is not None:
            query["version"] = expected_version
        update = {"$set": _fields(hn, data), "$inc": {"version": 1}}
        doc = await self._guarded(
            "replace", lambda: self.collection.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        )
        if doc is not None:
            return _stored(doc)
        # Lost the race (another write bumped the version) or the record was merged away.
        now = await self._live("replace", hospital_number)
        if now is None:
            raise UnknownPatient(hospital_number)
        raise VersionConflict(now["version"])

    async def find_by_nhs_number(self, nhs_number: str) -> list[StoredPatient]:
        async def find() -> list[Document]:
            cursor = self.collection.find({"record.nhsNumber": nhs_number, **LIVE}).sort("_id", ASCENDING)
            return await cursor.to_list(None)

        return [_stored(doc) for doc in await self._guarded("find", find)]

    async def record_pds_security(self, hospital_number: str, security: PDSSecurity) -> bool:
        current = await self._live("confirm", hospital_number)
        if current is None:
            return False
        result = await self._guarded(
            "confirm",
            lambda: self.collection.update_one(
                {"_id": current["_id"], "record.nhsNumber": security.nhs_number, **LIVE},
                {"$set": {"pdsSecurity": security.to_document()}},
            ),
        )
        return result.matched_count == 1

    async def merge(self, old: str, surviving: str) -> StoredPatient:
        for _ in range(MERGE_ATTEMPTS):
            gone_doc, keep_doc = await self._live("merge", old), await self._live("merge", surviving)
            if gone_doc is not None and keep_doc is not None and gone_doc["_id"] == keep_doc["_id"]:
                raise ValueError("a record cannot be merged into itself")
            if gone_doc is None:
                raise UnknownPatient(old)
            if keep_doc is None:
                raise UnknownPatient(surviving)
            gone, keep = _stored(gone_doc), _stored(keep_doc)
            joined = merged_data(keep, gone)
            # Step 1: the survivor takes the joined lists (its own record unchanged).
            survivor = await self._guarded(
                "merge",
                lambda: self.collection.find_one_and_update(
                    {"_id": keep.hospital_number, "version": keep.version, **LIVE},
                    {
                        "$set": {
                            "allergies": list(joined.allergies),
                            "medications": list(joined.medications),
                            "updated": now_iso(),
                        },
                        "$inc": {"version": 1},
                    },
                    return_document=ReturnDocument.AFTER,
                ),
            )
            if survivor is None:
                continue  # the survivor changed under us: read both again
            # Step 2: the merged-away record becomes an alias, only if it is as we read it.
            result = await self._guarded(
                "merge",
                lambda: self.collection.replace_one(
                    {"_id": gone.hospital_number, "version": gone.version, **LIVE},
                    {"aliasOf": keep.hospital_number, "merged": now_iso()},
                ),
            )
            if result.matched_count == 1:
                return _stored(survivor)
            # The old record changed between the read and step 2: join its new lists too.
        raise VersionConflict((await self._live("merge", surviving) or {"version": 0})["version"])

    async def close(self) -> None:
        """The client belongs to the app lifespan (shared with the cache): not closed here."""
        return None
