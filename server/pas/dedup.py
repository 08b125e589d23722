"""When a PAS-recorded allergy or medication and an NHS one describe the same record.

Both are already known to be about the same person (same NHS number). Then:
- AllergyIntolerance: they share a coded substance (same system and code in code.coding).
- MedicationRequest: they share a coded medicine, and their start dates agree when both
  have one (a new course of the same drug is a different record).
The NHS record is kept and the PAS copy dropped: the national record is the one other
care settings see. Pure functions.
"""

from __future__ import annotations

from typing import Any

Resource = dict[str, Any]


def _codes(concept: Any) -> set[tuple[str, str]]:
    if not isinstance(concept, dict):
        return set()
    return {
        (c.get("system", ""), c.get("code", ""))
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("code")
    }


def _start(resource: Resource) -> str | None:
    dosage = (resource.get("dosageInstruction") or [{}])[0]
    start = (
        (((dosage.get("timing") or {}).get("repeat") or {}).get("boundsPeriod") or {}).get("start")
        or ((resource.get("dispenseRequest") or {}).get("validityPeriod") or {}).get("start")
        or resource.get("authoredOn")
    )
    return start[:10] if isinstance(start, str) else None


def same_record(nhs: Resource, pas: Resource) -> bool:
    if nhs.get("resourceType") != pas.get("resourceType"):
        return False
    if pas["resourceType"] == "AllergyIntolerance":
        return bool(_codes(nhs.get("code")) & _codes(pas.get("code")))
    if pas["resourceType"] == "MedicationRequest":
        if not _codes(nhs.get("medicationCodeableConcept")) & _codes(pas.get("medicationCodeableConcept")):
            return False
        a, b = _start(nhs), _start(pas)
        return a is None or b is None or a == b
    return False


def without_duplicates(nhs: list[Resource], pas: list[Resource]) -> list[Resource]:
    """The PAS records that no NHS record already describes."""
    return [p for p in pas if not any(same_record(n, p) for n in nhs)]
