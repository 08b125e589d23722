"""The PAS record store: PAS-originated records kept as the store of record.

Unlike the NHS response cache, nothing here expires: a hospital's registration is the
only copy the façade has. Records are held in the canonical PAS form of the loaded
profile (the form `to_pas` writes), versioned by a counter that becomes the ETag, so
PUT can use If-Match. A merge (HL7 A40) leaves the old hospital number as an alias of
the surviving record, as PDS does for superseded NHS numbers.

`PASStore` is the seam: `InMemoryPASStore` (the default, one process, lost on restart)
and `MongoPASStore` (server.pas.mongo_store, when FACADE_MONGODB_URI is set) implement
the same seven methods and pass the same behaviour suite (tests/integration/test_pas_stores.py).

Beside the PAS record, each patient keeps what PDS last said about its confidentiality
(`PDSSecurity`: the code, the NHS number PDS was asked about, and when). It is the
façade's own knowledge, not part of the PAS record: recording it neither changes the
record nor its version, and a write that learnt nothing new from PDS keeps it.

Backend trouble is never swallowed here, unlike the cache: a store that cannot reach its
database raises `StoreUnavailable`, and the PAS answers 503 (REST) or AR (HL7) instead
of pretending a write happened.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

PASRecord = dict[str, Any]


@dataclass(frozen=True)
class PDSSecurity:
    """What PDS said about a patient's confidentiality (meta.security U, R or V).

    Valid only for `nhs_number`: a record whose NHS number changes is unconfirmed again."""

    code: str
    nhs_number: str
    confirmed: str  # when PDS said it (ISO 8601, UTC)

    def to_document(self) -> dict[str, str]:
        return {"code": self.code, "nhsNumber": self.nhs_number, "confirmed": self.confirmed}

    @classmethod
    def from_document(cls, doc: Any) -> PDSSecurity | None:
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), str) for k in ("code", "nhsNumber", "confirmed")
        ):
            return None
        return cls(doc["code"], doc["nhsNumber"], doc["confirmed"])


@dataclass(frozen=True)
class StoredPatient:
    """One PAS patient: the record (with its PAS-recorded allergies and medications)."""

    hospital_number: str
    record: PASRecord
    version: int
    updated: str
    allergies: tuple[PASRecord, ...] = ()
    medications: tuple[PASRecord, ...] = ()
    pds_security: PDSSecurity | None = None  # PDS's last word on confidentiality; None = never confirmed

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def nhs_number(self) -> str | None:
        return self.record.get("nhsNumber")


class AlreadyExists(Exception):
    """A create for a hospital number that is already registered."""


class UnknownPatient(Exception):
    """No record (and no alias) for the hospital number."""


class StoreUnavailable(Exception):
    """The store's database could not be reached or did not confirm the operation.

    `confirmed_not_written` is True when the operation certainly never reached the
    database (no server could be selected), False when the connection failed after the
    request may have been sent: the write may or may not have been applied, and the
    caller must read the record again before repeating it. The message names the
    operation and the driver's exception type only (driver messages can quote keys)."""

    def __init__(self, operation: str, cause: str, *, confirmed_not_written: bool) -> None:
        super().__init__(f"PAS store {operation} failed ({cause})")
        self.operation = operation
        self.cause = cause
        self.confirmed_not_written = confirmed_not_written


class VersionConflict(Exception):
    """The caller's version is not the current one (If-Match failed)."""

    def __init__(self, current: int) -> None:
        super().__init__(f"current version is {current}")
        self.current = current


@dataclass(frozen=True)
class PatientData:
    """What a write carries: the patient record, its PAS-recorded lists and, when PDS
    answered during the write, PDS's confidentiality (None = keep what is stored)."""

    record: PASRecord
    allergies: tuple[PASRecord, ...] = ()
    medications: tuple[PASRecord, ...] = ()
    pds_security: PDSSecurity | None = None


class PASStore(Protocol):
    async def create(self, data: PatientData) -> StoredPatient: ...

    async def get(self, hospital_number: str) -> StoredPatient | None: ...

    async def replace(self, hospital_number: str, data: PatientData, *, expected_version: int | None) -> StoredPatient:
        """Replace the record; `expected_version=None` means unconditional (HL7 updates)."""

    async def find_by_nhs_number(self, nhs_number: str) -> list[StoredPatient]: ...

    async def record_pds_security(self, hospital_number: str, security: PDSSecurity) -> bool:
        """Keep what PDS said, without touching the record or its version; only while the
        record still has `security.nhs_number` (False when it no longer does, or is gone)."""

    async def merge(self, old: str, surviving: str) -> StoredPatient:
        """Fold `old` into `surviving`: lists are joined, `old` becomes an alias."""

    async def close(self) -> None: ...


def merged_data(keep: StoredPatient, gone: StoredPatient) -> PatientData:
    """What a merge leaves on the surviving record: its own patient record, and its
    lists joined with the merged-away ones (an id already present is not repeated, so
    joining twice gives the same lists: a merge interrupted half-way can be redone)."""

    def joined(a: tuple[PASRecord, ...], b: tuple[PASRecord, ...], key: str) -> tuple[PASRecord, ...]:
        ids = {r.get(key) for r in a}
        return a + tuple(r for r in b if r.get(key) is None or r.get(key) not in ids)

    return PatientData(
        keep.record,
        joined(keep.allergies, gone.allergies, "allergyId"),
        joined(keep.medications, gone.medications, "prescriptionId"),
        keep.pds_security,
    )


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class InMemoryPASStore:
    """The default store: a dict per process. Each method runs without awaiting, so
    a check-and-set (the version test) cannot interleave with another request."""

    _records: dict[str, StoredPatient] = field(default_factory=dict)
    _aliases: dict[str, str] = field(default_factory=dict)

    def _resolve(self, hospital_number: str) -> str:
        seen = set()
        while hospital_number in self._aliases and hospital_number not in seen:
            seen.add(hospital_number)
            hospital_number = self._aliases[hospital_number]
        return hospital_number

    @staticmethod
    def _stored(hn: str, data: PatientData, version: int, kept: PDSSecurity | None = None) -> StoredPatient:
        return StoredPatient(
            hn,
            copy.deepcopy(data.record),
            version,
            now_iso(),
            copy.deepcopy(data.allergies),
            copy.deepcopy(data.medications),
            data.pds_security or kept,
        )

    async def create(self, data: PatientData) -> StoredPatient:
        hn = data.record["hospitalNumber"]
        if hn in self._records or hn in self._aliases:
            raise AlreadyExists(hn)
        self._records[hn] = self._stored(hn, data, 1)
        return self._records[hn]

    async def get(self, hospital_number: str) -> StoredPatient | None:
        return self._records.get(self._resolve(hospital_number))

    async def replace(self, hospital_number: str, data: PatientData, *, expected_version: int | None) -> StoredPatient:
        hn = self._resolve(hospital_number)
        current = self._records.get(hn)
        if current is None:
            raise UnknownPatient(hospital_number)
        if expected_version is not None and expected_version != current.version:
            raise VersionConflict(current.version)
        record = {**data.record, "hospitalNumber": hn}
        self._records[hn] = self._stored(
            hn,
            PatientData(record, data.allergies, data.medications, data.pds_security),
            current.version + 1,
            current.pds_security,
        )
        return self._records[hn]

    async def find_by_nhs_number(self, nhs_number: str) -> list[StoredPatient]:
        return [p for p in self._records.values() if p.nhs_number == nhs_number]

    async def record_pds_security(self, hospital_number: str, security: PDSSecurity) -> bool:
        hn = self._resolve(hospital_number)
        current = self._records.get(hn)
        if current is None or current.nhs_number != security.nhs_number:
            return False
        self._records[hn] = dataclasses.replace(current, pds_security=security)
        return True

    async def merge(self, old: str, surviving: str) -> StoredPatient:
        old_hn, keep_hn = self._resolve(old), self._resolve(surviving)
        if old_hn == keep_hn:
            raise ValueError("a record cannot be merged into itself")
        gone, keep = self._records.get(old_hn), self._records.get(keep_hn)
        if gone is None:
            raise UnknownPatient(old)
        if keep is None:
            raise UnknownPatient(surviving)

        self._records[keep_hn] = self._stored(keep_hn, merged_data(keep, gone), keep.version + 1)
        del self._records[old_hn]
        self._aliases[old_hn] = keep_hn
        return self._records[keep_hn]

    async def close(self) -> None:
        return None
