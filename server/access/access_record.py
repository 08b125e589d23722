"""One access as it happened, frozen: the facts its AuditEvent is made of.

Why: building the FHIR AuditEvent of an access (some sixty nested dicts and lists),
serialising it and deriving its index fields was about a fifth of a cached read's CPU
under load, for an event that the sandbox's in-memory trail then kept as bytes nobody
might ever read. That trail keeps this record instead and builds the event when an
auditor reads it (server/access/audit_trail.py); MongoDB keeps the event itself, built
at once. Either way the event is the same: `event()` is audit_event with this record's
id and instant, and the note is copied here, so nothing the request does afterwards
changes it.

`index_fields()` derives the stores' index fields from the same facts, without the
event; tests/property/test_access_record_properties.py checks they equal what
server.access.audit_index derives from the built event.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from server.access.audit_event import ACTIONS, MAX_RESOURCE_ENTITIES, AuditNote, audit_event, outcome_code
from server.access.audit_index import patient_reference
from server.access.principal import Principal
from server.random_ids import random_uuid


class AccessRecord(NamedTuple):
    """Immutable and cheap to make (a tuple: a frozen dataclass's __init__ cost three times
    as much, once per request)."""

    event_id: str
    recorded: dt.datetime  # aware, to the millisecond, as AuditEvent.recorded says it
    note: AuditNote  # a copy: the request's own note is not kept
    principal: Principal | None  # immutable, shared with the verified-token cache
    status: int
    observer: str
    break_glass: bool

    @classmethod
    def of(
        cls,
        note: AuditNote,
        principal: Principal | None,
        status: int,
        *,
        observer: str,
        break_glass: bool = False,
        now: dt.datetime | None = None,
    ) -> AccessRecord:
        instant = now or dt.datetime.now(dt.timezone.utc)
        return cls(
            event_id=random_uuid(),
            recorded=instant.replace(microsecond=instant.microsecond // 1000 * 1000),
            note=_copy(note),
            principal=principal,
            status=status,
            observer=observer,
            break_glass=break_glass,
        )

    def event(self) -> dict[str, Any]:
        """The AuditEvent of this access (a new dict each call)."""
        return audit_event(
            self.note,
            self.principal,
            self.status,
            observer=self.observer,
            break_glass=self.break_glass,
            now=self.recorded,
            event_id=self.event_id,
        )

    def index_fields(self) -> dict[str, Any]:
        """server.access.audit_index.index_fields of `event()`, from the facts."""
        note, principal = self.note, self.principal
        shown = [*note.patients, *(r for r in note.resources[:MAX_RESOURCE_ENTITIES] if r not in note.patients)]
        agents: list[str] = []
        if principal is not None:
            agents.append(principal.subject)
            agents += [value for value in (principal.client_id, principal.organisation_ods) if value]
        types = ["rest", note.interaction, *([note.operation] if note.operation else [])]
        return {
            "patients": _unique([ref for ref in map(patient_reference, shown) if ref]),
            "agents": _unique(agents),
            "recorded": self.recorded,
            "outcome": outcome_code(self.status),
            "types": _unique(types),
            "action": ACTIONS.get(note.interaction, "E"),
        }


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _copy(note: AuditNote) -> AuditNote:
    """Field by field: half the cost of dataclasses.replace, once per request. A field
    added to AuditNote and left out here fails tests/property/test_access_record_properties.py."""
    return AuditNote(
        request_id=note.request_id,
        method=note.method,
        target=note.target,
        client_address=note.client_address,
        interaction=note.interaction,
        resource_type=note.resource_type,
        patients=list(note.patients),
        resources=list(note.resources),
        query=note.query,
        reason=note.reason,
        withheld=note.withheld,
        operation=note.operation,
    )
