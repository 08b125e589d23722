"""One FHIR R4 AuditEvent per access, in the IHE Basic Audit Log Patterns (BALP) shape.

Pure: the HTTP edge (server.access.middleware) fills an AuditNote as the request goes,
and `audit_event` turns it, the principal and the status into the event. Who (user,
roles, client, organisation, network address), what (type, interaction, query),
which patients (every patient in the answer), why (purpose of use, break-glass
flagged), the outcome, the request id, when, and the observer.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from server.access.principal import Principal
from server.nhs.identifiers import ODS_SYSTEM
from server.random_ids import random_uuid

AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
EXTRA_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ODS = ODS_SYSTEM
CLIENT_SYSTEM = "urn:nhs-fhir-facade:client-id"
ROLE_SYSTEM = "urn:nhs-fhir-facade:role"
JOB_ROLE_SYSTEM = "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode"
BREAK_GLASS = "urn:nhs-fhir-facade:audit:break-glass"
ACTIONS = {
    "read": "R",
    "vread": "R",
    "search-type": "E",
    "search-system": "E",
    "create": "C",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "operation": "E",
    "batch": "E",
}
OPERATION_SYSTEM = "urn:nhs-fhir-facade:operation"  # the FHIR operation run, e.g. everything
MAX_RESOURCE_ENTITIES = 200


@dataclass
class AuditNote:
    """What the request did, filled in as it goes; one per request (scope state "audit")."""

    request_id: str
    method: str
    target: str  # path and query as received (audit is PHI: only the auditor reads it)
    client_address: str | None
    interaction: str
    resource_type: str | None = None
    patients: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    query: bytes | None = None  # the search as asked (query string plus form body)
    reason: str | None = None  # why it was refused, when it was
    withheld: int = 0  # resources left out by access checks
    operation: str | None = None  # the FHIR operation, when interaction is "operation" (e.g. everything)

    def saw(self, patients: list[str], resources: list[str]) -> None:
        for p in patients:
            if p not in self.patients:
                self.patients.append(p)
        self.resources.extend(r for r in resources if r not in self.resources)


def interaction_of(method: str, path: str) -> str:
    """The FHIR interaction a request path asks for (handlers may refine it)."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["pas", "v1"]:
        if method == "POST":
            return "create" if parts[2:3] == ["patients"] else "update"  # HL7 ADT writes are upserts
        return "update" if method == "PUT" else "read"
    if "_history" in parts:
        return "vread"
    if parts and parts[-1].startswith("$"):
        return "operation"
    if method == "POST" and not parts:
        return "batch"  # POST [base]: a batch (a transaction is refused as one)
    if method == "POST" and parts[-1:] != ["_search"]:
        return "create"
    if method in ("PUT", "PATCH", "DELETE"):
        return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return "read" if len(parts) == 2 and parts[1] != "_search" else "search-type"


def outcome_code(status: int) -> str:
    return "0" if status < 400 else "4" if status < 500 else "8"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _user_agent(principal: Principal | None, note: AuditNote) -> dict[str, Any]:
    agent: dict[str, Any] = {"type": {"coding": [_coding(EXTRA_ROLE, "humanuser", "human user")]}, "requestor": True}
    if principal is None:
        agent["who"] = {"display": "unauthenticated caller"}
    else:
        agent["who"] = {"identifier": {"system": principal.issuer, "value": principal.subject}}
        if principal.sds_user_id:
            agent["altId"] = principal.sds_user_id
        roles: list[dict[str, Any]] = [{"coding": [_coding(ROLE_SYSTEM, r)]} for r in sorted(principal.roles)]
        roles += [
            {"coding": [_coding(JOB_ROLE_SYSTEM, c.rsplit(":", 1)[-1])], "text": c}
            for c in principal.role_codes
            if c.rsplit(":", 1)[-1].startswith("R")
        ]
        if roles:
            agent["role"] = roles
        if principal.purpose:
            agent["purposeOfUse"] = [{"coding": [_coding(PURPOSE, principal.purpose)]}]
    if note.client_address:
        agent["network"] = {"address": note.client_address, "type": "2"}
    return agent


def audit_event(
    note: AuditNote,
    principal: Principal | None,
    status: int,
    *,
    observer: str,
    break_glass: bool = False,
    now: dt.datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    recorded = (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="milliseconds")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id or random_uuid(),
        "type": _coding(AUDIT_TYPE, "rest", "Restful Operation"),
        "subtype": [_coding(INTERACTION, note.interaction)]
        + ([_coding(OPERATION_SYSTEM, note.operation, f"${note.operation}")] if note.operation else []),
        "action": ACTIONS.get(note.interaction, "E"),
        "recorded": recorded,
        "outcome": outcome_code(status),
        "outcomeDesc": f"HTTP {status}"
        + (f": {note.reason[:300]}" if note.reason else "")
        + (f"; {note.withheld} resource(s) withheld by access checks" if note.withheld else ""),
        "agent": [_user_agent(principal, note)],
        "source": {
            "site": observer,
            "observer": {"display": "nhs-fhir-facade"},
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if principal is not None and principal.purpose:
        event["purposeOfEvent"] = [{"coding": [_coding(PURPOSE, principal.purpose)]}]
    if break_glass:
        event["extension"] = [{"url": BREAK_GLASS, "valueBoolean": True}]
    if principal is not None and principal.client_id:
        event["agent"].append(
            {
                "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
                "who": {"identifier": {"system": CLIENT_SYSTEM, "value": principal.client_id}},
                "requestor": False,
            }
        )
    if principal is not None and principal.organisation_ods:
        event["agent"].append(
            {
                "type": {"text": "organisation"},
                "who": {"identifier": {"system": ODS, "value": principal.organisation_ods}},
                "requestor": False,
            }
        )
    event["agent"].append(
        {
            "type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
            "who": {"display": "nhs-fhir-facade"},
            "requestor": False,
        }
    )
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": p},
            "type": _coding(ENTITY_TYPE, "1", "Person"),
            "role": _coding(OBJECT_ROLE, "1", "Patient"),
        }
        for p in note.patients
    ]
    entities += [
        {
            "what": {"reference": r},
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
        }
        for r in note.resources[:MAX_RESOURCE_ENTITIES]
        if r not in note.patients
    ]
    query = (
        note.query
        if note.query is not None
        else (f"{note.method} {note.target}".encode() if note.interaction.startswith("search") else None)
    )
    if query is not None:
        entities.append(
            {
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "24", "Query"),
                "query": base64.b64encode(query[:8192]).decode("ascii"),
            }
        )
    entities.append(
        {"what": {"identifier": {"value": note.request_id}}, "type": _coding(BALP_ENTITY, "XrequestId", "X-Request-Id")}
    )
    event["entity"] = entities
    return event
