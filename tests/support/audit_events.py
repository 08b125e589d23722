"""AuditEvents shaped as the façade's builder makes them (IHE BALP RESTful access), for
the audit trail tests: one function with the few fields a test varies as arguments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

BASE_TIME = datetime(2026, 11, 29, 19, 0, 0, 123000, tzinfo=timezone.utc)
TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
ISSUER = "https://issuer.example/cis2"
CLIENT_SYSTEM = "urn:nhs-fhir-facade:client"


def audit_event(
    *,
    event_id: str | None = None,
    recorded: datetime | str | None = None,
    minutes: float = 0,
    patients: Sequence[str] = ("9000000009",),
    others: Sequence[str] = (),
    user: str = "555254242106",
    client: str = "clinic-app",
    subtype: str = "read",
    action: str = "R",
    outcome: str = "0",
    query: str | None = None,
) -> dict[str, Any]:
    """One event; `minutes` shifts `recorded` from BASE_TIME (ignored when `recorded` is given)."""
    when = recorded if recorded is not None else BASE_TIME + timedelta(minutes=minutes)
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": f"Patient/{p}"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
        }
        for p in patients
    ]
    entities += [{"what": {"reference": ref}} for ref in others]
    if query is not None:
        entities.append(
            {
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24"},
                "query": query,
            }
        )
    return {
        "resourceType": "AuditEvent",
        "id": event_id or str(uuid.uuid4()),
        "type": {"system": TYPE_SYSTEM, "code": "rest"},
        "subtype": [{"system": INTERACTION_SYSTEM, "code": subtype}],
        "action": action,
        "recorded": when if isinstance(when, str) else when.isoformat(timespec="milliseconds"),
        "outcome": outcome,
        "outcomeDesc": "test event",
        "purposeOfEvent": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
        ],
        "agent": [
            {
                "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153"}]},
                "who": {"identifier": {"system": ISSUER, "value": user}, "display": "Dr Test"},
                "requestor": True,
            },
            {"who": {"identifier": {"system": CLIENT_SYSTEM, "value": client}}, "requestor": False},
        ],
        "source": {
            "observer": {"display": "nhs-fhir-facade"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
        "entity": entities,
    }
