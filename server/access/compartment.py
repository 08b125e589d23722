"""Which patients a resource or a search is about: the patient compartment, for access
checks and for the audit trail's patient entities. Pure.

Which patients a resource is about is server.fhir.patient_refs' one answer (the cache's
restricted-patient purge uses it too); this module adds what access and audit need on
top: the audit trail's `Patient/{id}` entities and the patients a search names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from server.fhir.patient_refs import patient_keys as patient_keys  # the one answer, re-exported here
from server.fhir.search_params import ReferenceValue
from server.fhir.search_request import SearchRequest
from server.nhs.identifiers import NHS_NUMBER_SYSTEM

NHS_NUMBER = re.compile(r"[0-9]{10}")
# Modifiers that still name the patient itself; any other (`:not`, `:missing`, `:below`...)
# does not, so a compartment check refuses it.
NAMING_MODIFIERS = (None, "identifier", "Patient", "exact")
PATIENT_CRITERIA = ("patient", "subject")


def audit_patients(resources: Iterable[dict[str, Any]]) -> list[str]:
    """`Patient/{id}` for every patient the resources are about, in first-seen order;
    an NHS number wins over a local id when both are known for the same resource."""
    seen: dict[str, None] = {}
    for resource in resources:
        keys = patient_keys(resource)
        numbers = sorted(k for k in keys if NHS_NUMBER.fullmatch(k))
        for key in numbers or sorted(keys):
            seen.setdefault(f"Patient/{key}", None)
    return list(seen)


def _value_key(value: object) -> str | None:
    if isinstance(value, ReferenceValue):
        if value.identifier is not None:
            return (
                value.identifier.code
                if value.identifier.any_system or (value.identifier.system == NHS_NUMBER_SYSTEM)
                else None
            )
        if value.resource_type in (None, "Patient"):
            return value.id
        return None
    code = getattr(value, "code", None)  # a token: identifier=system|value, _id=value
    system = getattr(value, "system", None)
    any_system = getattr(value, "any_system", False)
    if isinstance(code, str) and (any_system or system in (None, NHS_NUMBER_SYSTEM)):
        return code
    return None


def searched_patients(search: SearchRequest) -> list[str] | None:
    """The patients a search is restricted to by its criteria, or None when it names none.

    Clinical types: every value of `patient` / `subject`. Patient: every `_id` and NHS
    number `identifier`. A value that names no patient (another system, another type)
    comes back as "" so a compartment check refuses it."""
    names = ("_id", "identifier") if search.resource_type == "Patient" else PATIENT_CRITERIA
    found: list[str] = []
    named = False
    for param in search.params:
        if param.name not in names:
            continue
        named = True
        if param.modifier not in NAMING_MODIFIERS:
            found.append("")
            continue
        for value in param.values:
            key = _value_key(value)
            found.append(key or "")
    return found if named else None
