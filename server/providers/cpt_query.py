"""FHIR MedicationRequest search -> what to ask the Prescription Tracker, and the local
filters for what CPT cannot filter. Pure; raises 400s naming the parameter.

CPT can only list by NHS number or fetch one prescription by id, so:
- patient / subject / patient.identifier give the NHS numbers (Modulus-11 checked here,
  so an invalid number never reaches CPT); several parameters are AND (intersection),
  comma values are OR (one CPT search each);
- identifier=https://fhir.nhs.uk/Id/prescription-order-number|X fetches prescription X
  directly (one call instead of a search plus details); other identifier values
  (item numbers, bare codes) only filter;
- status, intent, authoredon (and identifier) are applied to the converted resources.
A search naming neither a patient nor a prescription is refused: CPT has no other entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.fhir.errors import BadRequest, InvalidSearchParameter
from server.fhir.paths import values_at
from server.fhir.search_params import DateValue, MissingValue, ParsedParam, TokenValue, fhir_date_range
from server.fhir.search_request import SearchRequest
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.providers.patient_reference import nhs_numbers

ORDER_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/prescription-order-number"
STATUS_SYSTEM = "http://hl7.org/fhir/CodeSystem/medicationrequest-status"
INTENT_SYSTEM = "http://hl7.org/fhir/CodeSystem/medicationrequest-intent"
PATIENT_PARAMS = ("patient", "subject")
MAX_UPSTREAM_KEYS = 10  # OR-ed NHS numbers or prescription ids per search

Resource = dict[str, Any]


@dataclass(frozen=True)
class CPTQuery:
    """The upstream calls a search needs: NHS numbers to list, prescriptions to fetch."""

    nhs_numbers: frozenset[str] | None  # None: the search names no patient
    prescription_ids: tuple[str, ...]  # fetched directly when not empty


def _order_numbers(param: ParsedParam) -> set[str] | None:
    """Prescription ids when every value of this identifier param names one, else None."""
    if param.modifier is not None:
        return None
    codes: set[str] = set()
    for value in param.values:
        assert isinstance(value, TokenValue)
        if value.any_system or value.system != ORDER_NUMBER_SYSTEM or not value.code:
            return None
        codes.add(value.code)
    return codes


def plan(request: SearchRequest) -> CPTQuery:
    """Decide the CPT calls for a parsed search (validation happens here, before I/O)."""
    for param in request.params:
        check_filter_modifier(param)
    numbers: set[str] | None = None
    for name in PATIENT_PARAMS:
        for param in request.get(name):
            found = nhs_numbers(param)
            numbers = found if numbers is None else numbers & found
    prescription_ids: set[str] | None = None
    for param in request.get("identifier"):
        codes = _order_numbers(param)
        if codes is not None:
            prescription_ids = codes if prescription_ids is None else prescription_ids & codes
    if numbers is None and prescription_ids is None:
        raise BadRequest(
            "The NHS Prescription Tracker finds prescriptions by patient: add patient=<NHS number> (or subject=, "
            f"patient.identifier={NHS_NUMBER_SYSTEM}|<NHS number>), or "
            f"identifier={ORDER_NUMBER_SYSTEM}|<prescription id>"
        )
    for keys, what in ((numbers, "NHS numbers"), (prescription_ids, "prescription ids")):
        if keys is not None and len(keys) > MAX_UPSTREAM_KEYS:
            raise InvalidSearchParameter(f"At most {MAX_UPSTREAM_KEYS} {what} can be searched at once")
    return CPTQuery(
        nhs_numbers=frozenset(numbers) if numbers is not None else None,
        prescription_ids=tuple(sorted(prescription_ids or ())),
    )


_LOCAL_MODIFIERS = {
    "identifier": (None, "missing"),
    "status": (None, "not", "missing"),
    "intent": (None, "not", "missing"),
    "authoredon": (None, "missing"),
}


def check_filter_modifier(param: ParsedParam) -> None:
    allowed = _LOCAL_MODIFIERS.get(param.name)
    if allowed is not None and param.modifier not in allowed:
        raise InvalidSearchParameter(f"Modifier ':{param.modifier}' is not supported on '{param.name}' here")


def _identifiers(resource: Resource) -> list[tuple[str | None, str | None]]:
    out = [(i.get("system"), i.get("value")) for i in resource.get("identifier") or [] if isinstance(i, dict)]
    group = resource.get("groupIdentifier")
    if isinstance(group, dict):
        out.append((group.get("system"), group.get("value")))
    return out


def _param_matches(resource: Resource, param: ParsedParam) -> bool:
    name = param.name
    if name in PATIENT_PARAMS:
        subject = (resource.get("subject") or {}).get("identifier") or {}
        return subject.get("value") in nhs_numbers(param)
    path = {"identifier": "identifier", "status": "status", "intent": "intent", "authoredon": "authoredOn"}.get(name)
    if path is None:
        return True
    if param.modifier == "missing":
        value = param.values[0]
        assert isinstance(value, MissingValue)
        present = bool(values_at(resource, path)) or (name == "identifier" and "groupIdentifier" in resource)
        return present != value.missing
    if name == "identifier":
        pairs = _identifiers(resource)
        return any(isinstance(v, TokenValue) and v.matches(s, c) for v in param.values for s, c in pairs)
    if name in ("status", "intent"):
        system = STATUS_SYSTEM if name == "status" else INTENT_SYSTEM
        code = resource.get(path)
        hit = any(isinstance(v, TokenValue) and v.matches(system, code) for v in param.values)
        return not hit if param.modifier == "not" else hit
    when = resource.get("authoredOn")
    span = fhir_date_range(when) if isinstance(when, str) else None
    if span is None:
        return False
    return any(isinstance(v, DateValue) and v.matches(*span) for v in param.values)


def matches(resource: Resource, request: SearchRequest) -> bool:
    """Every parameter (AND) holds for one converted MedicationRequest."""
    return all(_param_matches(resource, p) for p in request.params)
