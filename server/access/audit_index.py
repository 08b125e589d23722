"""What the audit stores index and search on, derived from one FHIR R4 AuditEvent. Pure.

Every store (memory, MongoDB) keeps the event exactly as built and, beside it, these
few flat fields, so a search by patient, agent or date is an index lookup instead of a
walk through nested JSON. The local matcher (server.fhir.search_match) then applies the
exact FHIR semantics to what the lookup found, so these fields only ever need to be a
superset of what a search can match; they never decide a match on their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

Event = dict[str, Any]


def patient_reference(reference: Any) -> str | None:
    """`Patient/{id}` for a reference to a Patient (relative, absolute or versioned), else None."""
    if not isinstance(reference, str):
        return None
    parts = [p for p in reference.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient":
        return f"Patient/{parts[-1]}"
    return None


def parse_recorded(value: Any) -> datetime:
    """AuditEvent.recorded (a FHIR instant: date, time and zone) as an aware datetime.

    Raises ValueError for anything else: an event the stores could not order or find by
    date is a builder bug, and it should surface where the event is made."""
    if not isinstance(value, str) or "T" not in value:
        raise ValueError("AuditEvent.recorded must be a FHIR instant (date, time and zone)")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("AuditEvent.recorded must carry a time zone")
    return parsed


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array (anything else: none), so odd shapes never crash an index."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _agents(event: Event) -> list[str]:
    """Identifier values, references and reference ids of every agent.who: a bare
    `agent=X` search matches an identifier value or a reference id (see
    server.providers.audit_event), and the index must hold both."""
    found: list[str] = []
    for agent in _dicts(event.get("agent")):
        who = agent.get("who")
        if not isinstance(who, dict):
            continue
        identifier = who.get("identifier")
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            found.append(identifier["value"])
        reference = who.get("reference")
        if isinstance(reference, str) and reference:
            found.append(reference)
            found.append(reference.rstrip("/").rsplit("/", 1)[-1])
    return _unique(found)


def _patients(event: Event) -> list[str]:
    whats = [entity.get("what") for entity in _dicts(event.get("entity"))]
    refs = [patient_reference(what.get("reference")) for what in whats if isinstance(what, dict)]
    return _unique([r for r in refs if r])


def _types(event: Event) -> list[str]:
    codings = [event.get("type"), *_dicts(event.get("subtype"))]
    return _unique([c["code"] for c in codings if isinstance(c, dict) and isinstance(c.get("code"), str)])


def index_fields(event: Event) -> dict[str, Any]:
    """The flat fields stored beside an event: `patients` (`Patient/{id}` of every
    entity.what), `agents`, `recorded` (aware datetime), `outcome`, `types` (type.code
    then every subtype code) and `action`. Raises ValueError when `recorded` is not an
    instant (see parse_recorded)."""
    outcome = event.get("outcome")
    action = event.get("action")
    return {
        "patients": _patients(event),
        "agents": _agents(event),
        "recorded": parse_recorded(event.get("recorded")),
        "outcome": outcome if isinstance(outcome, str) else None,
        "types": _types(event),
        "action": action if isinstance(action, str) else None,
    }
