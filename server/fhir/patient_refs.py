"""Which patients a resource is, or is about: one answer for the cache's restricted-patient
purge, the access checks (patient compartment, relationship) and the audit trail.

A Patient is about itself: its id and its NHS-number identifiers. Any other resource is
about the patients its `subject`, `patient` or `beneficiary` reference names, literally
(`Patient/9000000009`, an absolute URL, a versioned `.../Patient/X/_history/2`) or by
NHS-number identifier. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.nhs.identifiers import NHS_NUMBER_SYSTEM

PATIENT_REFERENCE_ELEMENTS = ("subject", "patient", "beneficiary")


def nhs_numbers(identifiers: Any) -> list[str]:
    """The NHS-number values of an Identifier or a list of them."""
    if isinstance(identifiers, Mapping):
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return []
    return [
        i["value"]
        for i in identifiers
        if isinstance(i, Mapping)
        and i.get("system") == NHS_NUMBER_SYSTEM
        and isinstance(i.get("value"), str)
        and i["value"]
    ]


def literal_patient_id(reference: Any) -> str | None:
    """The Patient id a literal reference names (relative, absolute or versioned), or None."""
    if not isinstance(reference, str):
        return None
    parts = reference.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "Patient" and parts[i + 1]:
            return parts[i + 1]
    return None


def patient_keys(resource: Mapping[str, Any]) -> set[str]:
    """Patient ids and NHS numbers the resource is or is about (empty: no patient)."""
    if resource.get("resourceType") == "Patient":
        keys = set(nhs_numbers(resource.get("identifier")))
        if isinstance(resource.get("id"), str) and resource["id"]:
            keys.add(resource["id"])
        return keys
    keys = set()
    for element in PATIENT_REFERENCE_ELEMENTS:
        ref = resource.get(element)
        if not isinstance(ref, Mapping):
            continue
        literal = literal_patient_id(ref.get("reference"))
        if literal:
            keys.add(literal)
        keys.update(nhs_numbers(ref.get("identifier")))
    return keys
