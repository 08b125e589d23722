"""Which patients a resource or a search is about: the patient compartment, for access
checks and for the audit trail's patient entities. Pure.

A Patient is about itself (its id and its NHS number identifiers); a clinical resource
is about the patient its `subject` / `patient` reference names, literally
(`Patient/9000000009`, `Patient/pas-H123`) or by NHS number identifier.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from server.fhir.search_params import ReferenceValue
from server.fhir.search_request import SearchRequest
from server.nhs.identifiers import NHS_NUMBER_SYSTEM

NHS_NUMBER = re.compile(r"[0-9]{10}")
# Modifiers that still name the patient itself; any other (`:not`, `:missing`, `:below`...)
# does not, so a compartment check refuses it.
NAMING_MODIFIERS = (None, "identifier", "Patient", "exact")
SUBJECT_ELEMENTS = ("subject", "patient")
PATIENT_CRITERIA = ("patient", "subject")


def _nhs_numbers(identifiers: Any) -> list[str]:
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return []
    return [i["value"] for i in identifiers
            if isinstance(i, dict) and i.get("system") == NHS_NUMBER_SYSTEM and isinstance(i.get("value"), str)]


def patient_keys(resource: dict[str, Any]) -> set[str]:
    """Patient ids and NHS numbers the resource belongs to (empty: no patient)."""
    if resource.get("resourceType") == "Patient":
        keys = set(_nhs_numbers(resource.get("identifier")))
        if isinstance(resource.get("id"), str):
            keys.add(resource["id"])
        return keys
    keys = set()
    for element in SUBJECT_ELEMENTS:
        ref = resource.get(element)
        if not isinstance(ref, dict):
            continue
        text = ref.get("reference")
        if isinstance(text, str) and "/" in text:
            rtype, _, rid = text.rstrip("/").rpartition("/")
            if rtype.endswith("Patient") and rid:
                keys.add(rid)
        keys.update(_nhs_numbers(ref.get("identifier")))
    return keys


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
            return value.identifier.code if value.identifier.any_system or (
                value.identifier.system == NHS_NUMBER_SYSTEM) else None
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
