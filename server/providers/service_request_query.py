"""ServiceRequest search -> which NHS API to ask, and local filters for the rest. Pure.

Routing (no NHS API answers every ServiceRequest search, see nhs-apis.md s.2):
- a UBRN (`identifier=https://fhir.nhs.uk/Id/UBRN|<12 digits>`, or a bare 12-digit
  `identifier=<ubrn>`) goes to e-RS, the authority for UBRNs; a patient given as well
  filters e-RS's answer locally;
- otherwise a patient (`patient`, `subject`, `patient:identifier`, `patient.identifier`,
  `subject:Patient`, as an NHS number) goes to BaRS; other identifiers filter locally;
- neither is a 400 saying what is needed. NHS numbers are Modulus-11 checked and UBRNs
  format checked here, so a bad one is a 400 before any NHS API is called.
Repeated parameters are AND (their sets intersect), comma values are OR (one upstream
call per value). Every declared parameter is also a local filter, compiled (and
rejected when unsupported) before any call, then applied to what the upstream returns.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mappings.nhs.service_request_ids import is_ubrn
from mappings.nhs.service_request_r4 import UBRN_SYSTEM, nhs_number_of
from server.fhir.errors import InvalidSearchParameter
from server.fhir.paths import values_at
from server.fhir.search_params import (
    DateValue,
    MissingValue,
    ParsedParam,
    TokenValue,
    fhir_date_range,
)
from server.fhir.search_request import SearchRequest
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.providers.patient_reference import nhs_numbers

Resource = dict[str, Any]
Predicate = Callable[[Resource], bool]

PATIENT_PARAMS = ("patient", "subject")
REQUEST_STATUS_SYSTEM = "http://hl7.org/fhir/request-status"
REQUEST_INTENT_SYSTEM = "http://hl7.org/fhir/request-intent"
REQUEST_PRIORITY_SYSTEM = "http://hl7.org/fhir/request-priority"

# Token parameters filtered locally: name -> (element path, kind, system of a plain code).
TOKEN_PARAMS: dict[str, tuple[str, str, str | None]] = {
    "identifier": ("identifier", "identifier", None),
    "status": ("status", "code", REQUEST_STATUS_SYSTEM),
    "intent": ("intent", "code", REQUEST_INTENT_SYSTEM),
    "priority": ("priority", "code", REQUEST_PRIORITY_SYSTEM),
    "category": ("category", "concept", None),
    "code": ("code", "concept", None),
    "performer-type": ("performerType", "concept", None),
}
# Date parameters: name -> element paths (dateTime strings or Periods).
DATE_PARAMS: dict[str, tuple[str, ...]] = {
    "authored": ("authoredOn",),
    "occurrence": ("occurrenceDateTime", "occurrencePeriod"),
}

_FAR_PAST = datetime(1, 1, 1, tzinfo=timezone.utc)
_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=timezone.utc)


@dataclass(frozen=True)
class ByPatient:
    """Ask BaRS (every configured target) for each NHS number."""

    nhs_numbers: tuple[str, ...]


@dataclass(frozen=True)
class ByUbrn:
    """Ask e-RS for each UBRN."""

    ubrns: tuple[str, ...]


Plan = ByPatient | ByUbrn


def _ubrns(param: ParsedParam) -> set[str] | None:
    """The UBRNs an identifier parameter names; None when it names no UBRN at all."""
    if param.modifier is not None:
        return None
    found: set[str] = set()
    for value in param.values:
        assert isinstance(value, TokenValue)
        if value.system == UBRN_SYSTEM and not value.any_system:
            if not value.code or not is_ubrn(value.code):
                raise InvalidSearchParameter(
                    f"Parameter 'identifier': a UBRN is twelve digits ({UBRN_SYSTEM}|000000070000)")
            found.add(value.code)
        elif value.any_system and value.code and is_ubrn(value.code):
            found.add(value.code)
        else:
            return None  # an OR with a non-UBRN identifier cannot be answered by e-RS alone
    return found


def _intersect(sets: Iterable[set[str]]) -> set[str] | None:
    result: set[str] | None = None
    for s in sets:
        result = s if result is None else result & s
    return result


def plan_search(request: SearchRequest) -> Plan:
    """Which NHS API answers this search; raises a 400 naming what is needed."""
    patients = _intersect(nhs_numbers(p) for name in PATIENT_PARAMS for p in request.get(name))
    ubrn_sets = [_ubrns(p) for p in request.get("identifier")]
    ubrns = _intersect(s for s in ubrn_sets if s is not None)
    if ubrns is not None:
        return ByUbrn(tuple(sorted(ubrns)))
    if patients is not None:
        return ByPatient(tuple(sorted(patients)))
    raise InvalidSearchParameter(
        "A ServiceRequest search needs a patient (patient=<NHS number> or "
        f"patient:identifier={NHS_NUMBER_SYSTEM}|<NHS number>; answered by BaRS) or a UBRN "
        f"(identifier={UBRN_SYSTEM}|<UBRN>; answered by e-RS)"
    )


# ---- local filters ---------------------------------------------------------------


def _token_pairs(resource: Resource, path: str, kind: str, system: str | None) -> list[tuple[str | None, str | None]]:
    pairs: list[tuple[str | None, str | None]] = []
    for value in values_at(resource, path):
        if kind == "code" and isinstance(value, str):
            pairs.append((system, value))
        elif kind == "identifier" and isinstance(value, dict):
            pairs.append((value.get("system"), value.get("value")))
        elif kind == "concept" and isinstance(value, dict):
            pairs.extend((c.get("system"), c.get("code")) for c in value.get("coding") or [] if isinstance(c, dict))
    return pairs


def _ranges(resource: Resource, paths: tuple[str, ...]) -> list[tuple[datetime, datetime]]:
    out = []
    for path in paths:
        for value in values_at(resource, path):
            if isinstance(value, str):
                rng = fhir_date_range(value)
                if rng:
                    out.append(rng)
            elif isinstance(value, dict):  # Period: an open end is unbounded
                start_rng = fhir_date_range(str(value.get("start", "")))
                end_rng = fhir_date_range(str(value.get("end", "")))
                out.append((start_rng[0] if start_rng else _FAR_PAST, end_rng[1] if end_rng else _FAR_FUTURE))
    return out


def _patient_predicate(param: ParsedParam) -> Predicate:
    numbers = nhs_numbers(param)
    return lambda r: nhs_number_of(r.get("subject")) in numbers


def _token_predicate(param: ParsedParam) -> Predicate:
    path, kind, system = TOKEN_PARAMS[param.name]
    if param.modifier not in (None, "not"):
        raise InvalidSearchParameter(f"Modifier ':{param.modifier}' is not supported on '{param.name}'")
    values = [v for v in param.values if isinstance(v, TokenValue)]

    def matches(resource: Resource) -> bool:
        pairs = _token_pairs(resource, path, kind, system)
        hit = any(v.matches(s, c) for v in values for s, c in pairs)
        return not hit if param.modifier == "not" else hit

    return matches


def _date_predicate(param: ParsedParam) -> Predicate:
    paths = DATE_PARAMS[param.name]
    values = [v for v in param.values if isinstance(v, DateValue)]
    return lambda r: any(v.matches(s, e) for v in values for s, e in _ranges(r, paths))


def _missing_predicate(param: ParsedParam) -> Predicate:
    value = param.values[0]
    assert isinstance(value, MissingValue)
    paths = ("subject",) if param.name in PATIENT_PARAMS else (
        (TOKEN_PARAMS[param.name][0],) if param.name in TOKEN_PARAMS else DATE_PARAMS[param.name])
    return lambda r: (not any(values_at(r, p) for p in paths)) == value.missing


def compile_filters(request: SearchRequest) -> Predicate:
    """One predicate for every declared parameter (AND); raises 400 for unsupported
    modifiers, before any NHS API is called."""
    predicates: list[Predicate] = []
    for param in request.params:
        if param.modifier == "missing" and param.name not in PATIENT_PARAMS:
            predicates.append(_missing_predicate(param))
        elif param.name in PATIENT_PARAMS:
            predicates.append(_patient_predicate(param))
        elif param.name in TOKEN_PARAMS:
            predicates.append(_token_predicate(param))
        elif param.name in DATE_PARAMS:
            predicates.append(_date_predicate(param))
    return lambda r: all(p(r) for p in predicates)
