"""Which HL7 messages the deployment has applied, by sender and control id: a resent
message is acknowledged again, never applied twice.

Why: an interface engine resends a message whose ACK it did not get (the connection
dropped, the ACK was lost, its timer fired). HL7 identifies a message by its sender
(MSH-3 application, MSH-4 facility) and control id (MSH-10), so the ledger keys on those
three, kept for FACADE_MLLP_DEDUP_SECONDS. It also keeps a digest of the message bytes: a
control id reused for a different message is a sender's bug that must not be silently
swallowed (it is answered AE, code 205, and nothing is applied).

A claim is taken before the message is applied and turned into the stored ACK after it;
an AR (store outage, refused sender) releases it, so the resend is applied. A claim still
"busy" long after it was taken (its worker died mid-message) is taken over. With MongoDB
the ledger is one collection for every worker and replica (the same message may come back
on another connection, to another worker); without it, this process's memory, which is
what one worker without MongoDB is (more workers need MongoDB: server/__main__.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

COLLECTION = "hl7_deliveries"
# A claim busy this long belongs to a worker that died mid-message: another may take it.
STALE_CLAIM_SECONDS = 120.0
# How long a resend waits for the same message in progress on another connection.
BUSY_WAIT_SECONDS = 30.0
BUSY_POLL_SECONDS = 0.05

Outcome = Literal["new", "done", "different"]


@dataclass(frozen=True)
class Claim:
    """ "new": apply the message, then finish() or release(); "done": answer `ack` (the
    first answer, byte for byte); "different": this control id names another message."""

    outcome: Outcome
    ack: str | None = None


class LedgerUnavailable(Exception):
    """The ledger's store cannot be read or written: the message is not applied (AR)."""


class DeliveryLedger(Protocol):
    async def claim(self, key: str, digest: str) -> Claim:
        """Take `key` for a message with this digest, or say what it already is. Waits
        (bounded) while the same message is being applied elsewhere; raises LedgerUnavailable."""

    async def finish(self, key: str, ack: str) -> None:
        """The message under `key` was applied and answered `ack`."""

    async def release(self, key: str) -> None:
        """The message under `key` was not applied (AR): a resend applies it."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Entry:
    digest: str
    ack: str | None  # None while the message is being applied
    taken: float  # monotonic time of the claim
    until: float  # monotonic time it is forgotten


class MemoryLedger:
    """One process's ledger (one worker without MongoDB)."""

    def __init__(self, seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.monotonic = monotonic
        self._entries: dict[str, _Entry] = {}

    async def claim(self, key: str, digest: str) -> Claim:
        deadline = self.monotonic() + BUSY_WAIT_SECONDS
        while True:
            now = self.monotonic()
            self._forget_expired(now)
            entry = self._entries.get(key)
            if entry is None or (entry.ack is None and now - entry.taken > STALE_CLAIM_SECONDS):
                self._entries[key] = _Entry(digest, None, now, now + self.seconds)
                return Claim("new")
            if entry.digest != digest:
                return Claim("different")
            if entry.ack is not None:
                return Claim("done", entry.ack)
            if now > deadline:
                raise LedgerUnavailable("the same message is still being applied on another connection")
            await asyncio.sleep(BUSY_POLL_SECONDS)

    async def finish(self, key: str, ack: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.ack = ack

    async def release(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.ack is None:
            del self._entries[key]

    def _forget_expired(self, now: float) -> None:
        if len(self._entries) > 1024:  # amortised: a sweep only once the ledger has grown
            self._entries = {k: e for k, e in self._entries.items() if e.until > now}
        else:
            for key in [k for k, e in self._entries.items() if e.until <= now]:
                del self._entries[key]


class MongoLedger:
    """The deployment's ledger: one document per message, `_id` the key, a TTL index on
    expiresAt. Every failure of MongoDB is LedgerUnavailable (the sender gets AR)."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        seconds: float,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.collection = collection
        self.seconds = seconds
        self.clock = clock
        self._indexed = False

    async def claim(self, key: str, digest: str) -> Claim:
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        try:
            if not self._indexed:
                await self.collection.create_index("expiresAt", expireAfterSeconds=0, name="expires_ttl")
                self._indexed = True
            while True:
                now = self.clock()
                fresh = {"_id": key, "digest": digest, "ack": None, "takenAt": now, "expiresAt": self._expiry(now)}
                try:
                    await self.collection.insert_one(fresh)
                    return Claim("new")
                except DuplicateKeyError:
                    pass
                held = await self.collection.find_one({"_id": key})
                if held is None:
                    continue  # expired or released in between: try again
                if held["expiresAt"] <= now:  # past its window, not yet swept by the TTL monitor
                    await self.collection.delete_one({"_id": key, "expiresAt": held["expiresAt"]})
                    continue
                if held["digest"] != digest:
                    return Claim("different")
                if held["ack"] is not None:
                    return Claim("done", held["ack"])
                if (now - held["takenAt"]).total_seconds() > STALE_CLAIM_SECONDS:
                    taken = await self.collection.update_one(
                        {"_id": key, "ack": None, "takenAt": held["takenAt"]}, {"$set": {"takenAt": now}}
                    )
                    if taken.modified_count == 1:
                        return Claim("new")
                    continue
                if time.monotonic() > deadline:
                    raise LedgerUnavailable("the same message is still being applied on another connection")
                await asyncio.sleep(BUSY_POLL_SECONDS)
        except PyMongoError as exc:
            raise LedgerUnavailable(f"the delivery ledger is unavailable ({type(exc).__name__})") from None

    async def finish(self, key: str, ack: str) -> None:
        try:
            await self.collection.update_one({"_id": key}, {"$set": {"ack": ack}})
        except PyMongoError as exc:
            # Applied, but the ledger does not know: a resend would be applied again. Said
            # loudly; the ACK still goes out (the message was applied).
            raise LedgerUnavailable(f"the delivery ledger is unavailable ({type(exc).__name__})") from None

    async def release(self, key: str) -> None:
        try:
            await self.collection.delete_one({"_id": key, "ack": None})
        except PyMongoError:
            pass  # the claim goes stale and is taken over after STALE_CLAIM_SECONDS

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)


class NoLedger:
    """FACADE_MLLP_DEDUP_SECONDS=0: every message is applied as it comes."""

    async def claim(self, key: str, digest: str) -> Claim:
        return Claim("new")

    async def finish(self, key: str, ack: str) -> None:
        return None

    async def release(self, key: str) -> None:
        return None
