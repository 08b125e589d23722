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
    expiresAt   when the entry is no use any more: fetchedAt + max(freshness, stale-if-error);
                the MongoDB TTL index deletes it eventually, every read checks it itself

Stores never raise for backend trouble: a failing backend reads as a miss, writes as a
no-op, and says so in health(). That is what lets a cache outage never fail a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

Document = dict[str, Any]
KEY_FIELDS = ("kind", "type", "key", "scope")


@dataclass(frozen=True)
class CacheKey:
    """What identifies one cache entry (the unique compound index in MongoDB)."""

    kind: str  # "read" | "search"
    type: str
    key: str
    scope: str = ""

    def as_filter(self) -> dict[str, str]:
        return {"kind": self.kind, "type": self.type, "key": self.key, "scope": self.scope}

    @classmethod
    def of(cls, doc: Document) -> CacheKey:
        return cls(doc["kind"], doc["type"], doc["key"], doc.get("scope", ""))


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
        """Remove every entry that contains or refers to the patient; returns how many,
        or None when the backend could not be reached (the caller must not forget it)."""

    async def health(self) -> dict[str, Any]:
        """Backend status for the health endpoint: {"backend", "status": up|down, ...}."""


def expired(doc: Document, now: datetime) -> bool:
    """Read-side expiry: MongoDB's TTL monitor only sweeps about once a minute."""
    return bool(doc["expiresAt"] <= now)
