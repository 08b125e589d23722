"""The cache-store protocol and the one document shape both stores hold.

A cache document is a plain dict, identical in memory and in MongoDB:

    kind        "read" | "search"
    type        FHIR resource type
    key         the resource id (read) or the canonical upstream query (search)
    scope       "" for data fetched with the façade's own credentials, or a hash of the
                caller's bearer token for user-restricted data (never shared across users)
    resource    the resource JSON (read)
    result      {"matches": [...], "issues": [...], "scores": [[id, score], ...]} (search)
    versionId, lastUpdated   from resource.meta (read), else None
    etag        the validator the upstream gives for this resource (PDS: W/"<versionId>")
    patients    ids of the patients the entry contains or refers to (restricted purge)
    fetchedAt   when the data came from upstream (timezone-aware UTC)
    requestedAt when the request for it was sent upstream; None for an entry that already
                shows a restriction (it holds a restricted patient: see "Purges" below)
    expiresAt   when the entry is no use any more: fetchedAt + max(freshness, stale-if-error);
                the MongoDB TTL index deletes it eventually, every read checks it itself

Purges: purge_patient(P) removes every entry naming P and leaves a tombstone for P (kept
TOMBSTONE_SECONDS). A put of an entry naming P whose requestedAt is before the tombstone is
refused (memory) or deleted again right after its write (MongoDB, where the check and the
write cannot be one operation): a request that was in flight when P was found restricted
cannot put P's old, unrestricted copy back. That copy reaches only the requests that were
already in flight with it, and on MongoDB whoever reads it in the one round trip between
its write and its delete.

Stores never raise for backend trouble: a failing backend reads as a miss, writes as a
no-op, and says so in health(). That is what lets a cache outage never fail a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from server.held_json import held_json

Document = dict[str, Any]
KEY_FIELDS = ("kind", "type", "key", "scope")
# How long a restricted patient's purge blocks copies requested before it: longer than any
# NHS request may take, retries and rate-limit waits included.
TOMBSTONE_SECONDS = 600.0


def purged_after_request(doc: Document, purged_at: datetime | None) -> bool:
    """True when `doc` was requested upstream before a purge at `purged_at` of a patient it
    names, so it must not be kept."""
    requested = doc.get("requestedAt")
    return purged_at is not None and requested is not None and purged_at > requested


@dataclass(frozen=True)
class CacheKey:
    """What identifies one cache entry (the unique compound index in MongoDB)."""

    kind: str  # "read" | "search"
    type: str
    key: str
    scope: str = ""
    # A miss looks its key up a dozen times (flights, the store's table): hashed once here.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.type, self.key, self.scope)))

    def __hash__(self) -> int:
        return self._hash

    def as_filter(self) -> dict[str, str]:
        return {"kind": self.kind, "type": self.type, "key": self.key, "scope": self.scope}

    @classmethod
    def of(cls, doc: Document) -> CacheKey:
        return cls(doc["kind"], doc["type"], doc["key"], doc.get("scope", ""))


_BODY_FIELDS = ("resource", "result")


@dataclass(frozen=True)
class FrozenDoc:
    """A cache document as a process holds it (the memory store, the near cache): scalar
    fields as they are, bodies as orjson bytes decoded afresh by thaw(), so no caller can
    change a held entry by mutating what it was given (MongoDB decodes afresh too)."""

    fields: Document
    bodies: dict[str, bytes]
    patients: tuple[str, ...]

    @classmethod
    def of(cls, doc: Document) -> FrozenDoc:
        return cls(
            fields={k: v for k, v in doc.items() if k not in _BODY_FIELDS and k != "patients"},
            bodies={k: held_json(doc[k]) for k in _BODY_FIELDS if k in doc},
            patients=tuple(doc.get("patients") or ()),
        )

    def thaw(self) -> Document:
        """A fresh document: one dict merge and one orjson.loads per body."""
        doc = {**self.fields, "patients": list(self.patients)}
        for name, body in self.bodies.items():
            doc[name] = orjson.loads(body)
        return doc


class CacheStore(Protocol):
    """Where cache documents live. Every method absorbs backend failures."""

    backend: str

    async def get(self, key: CacheKey) -> Document | None:
        """The document, or None when absent, past expiresAt, or the backend failed."""

    async def put(self, doc: Document) -> None:
        """Insert or replace the document with the same key (atomic per document)."""

    async def delete(self, key: CacheKey) -> None:
        """Remove one entry (missing is fine)."""

    async def purge_patient(self, patient_id: str) -> int | None:
        """Remove every entry that contains or refers to the patient and leave its tombstone;
        returns how many, or None when the backend could not be reached (the caller must not
        forget it)."""

    async def health(self) -> dict[str, Any]:
        """Backend status for the health endpoint: {"backend", "status": up|down, ...}."""


def expired(doc: Document, now: datetime) -> bool:
    """Read-side expiry: MongoDB's TTL monitor only sweeps about once a minute."""
    return bool(doc["expiresAt"] <= now)
