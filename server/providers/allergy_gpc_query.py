"""AllergyIntolerance search -> what to ask GP Connect, and local filtering. Pure.

GP Connect takes one NHS number and two switches, nothing else, so:
- `patient` (any form: id, Patient/id, URL, :identifier / .identifier with the NHS
  number system) must name exactly one patient; its NHS number is Modulus-11 checked
  here, so an invalid one never reaches GP Connect;
- `clinical-status` decides includeResolvedAllergies: resolved allergies are asked for
  only when the search can match resolved or inactive ones (GP Connect guidance keeps
  them apart so they are never mistaken for active ones); without clinical-status the
  search returns active allergies and says so in an information issue;
- every other parameter filters the converted R4 resources here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

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
from server.providers.patient_reference import nhs_numbers

CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CATEGORY_SYSTEM = "http://hl7.org/fhir/allergy-intolerance-category"
CRITICALITY_SYSTEM = "http://hl7.org/fhir/allergy-intolerance-criticality"
CLINICAL_STATUSES = frozenset({"active", "inactive", "resolved"})
NOT_ACTIVE = frozenset({"inactive", "resolved"})
ACTIVE_ONLY_NOTE = ("Only active allergies are returned unless clinical-status asks for resolved or inactive ones "
                    "(GP Connect keeps resolved allergies apart)")


@dataclass(frozen=True)
class GPConnectQuery:
    """What to ask GP Connect for one search."""

    nhs_number: str
    include_resolved: bool
    can_match: bool  # False when the filters exclude every clinical status: no call needed


def patient_nhs_number(request: SearchRequest) -> str:
    """The one NHS number the search is about; 400 when absent, several, or invalid."""
    params = request.get("patient")
    if not params:
        raise InvalidSearchParameter("An AllergyIntolerance search needs patient (GP Connect answers for one patient "
                                     "at a time), e.g. patient=9000000009")
    wanted: set[str] | None = None
    for param in params:
        numbers = nhs_numbers(param)
        wanted = numbers if wanted is None else wanted & numbers
    if not wanted or len(wanted) > 1:
        raise InvalidSearchParameter("Parameter 'patient' must name exactly one patient")
    return wanted.pop()


def _statuses(param: ParsedParam) -> frozenset[str]:
    """The clinical statuses one clinical-status occurrence can match."""
    if param.modifier == "missing":
        return CLINICAL_STATUSES  # entered-in-error records (no status) may sit in either list
    codes: set[str] = set()
    for value in param.values:
        assert isinstance(value, TokenValue)
        if value.any_system or value.system in (None, CLINICAL_SYSTEM):
            codes |= CLINICAL_STATUSES if value.code is None else {value.code}
    return frozenset(CLINICAL_STATUSES - codes if param.modifier == "not" else codes & CLINICAL_STATUSES)


def gpconnect_query(request: SearchRequest) -> GPConnectQuery:
    """Validate the search and decide what GP Connect must be asked."""
    nhs = patient_nhs_number(request)
    for param in request.params:
        if param.modifier == "text":
            raise InvalidSearchParameter(f"Modifier ':text' is not supported on '{param.name}'")
    status_params = request.get("clinical-status")
    if not status_params:
        return GPConnectQuery(nhs, include_resolved=False, can_match=True)
    possible = CLINICAL_STATUSES
    for param in status_params:
        possible = possible & _statuses(param)
    return GPConnectQuery(nhs, include_resolved=bool(possible & NOT_ACTIVE), can_match=bool(possible))


def _codings(resource: dict[str, Any], path: str, implied_system: str | None) -> list[tuple[str | None, str | None]]:
    out: list[tuple[str | None, str | None]] = []
    for value in values_at(resource, path):
        if isinstance(value, dict):
            out.extend((c.get("system"), c.get("code")) for c in value.get("coding") or [])
        elif isinstance(value, str):
            out.append((implied_system, value))
    return out


def _token_filter(path: str, implied_system: str | None = None) -> Callable[[dict[str, Any], ParsedParam], bool]:
    def check(resource: dict[str, Any], param: ParsedParam) -> bool:
        codings = _codings(resource, path, implied_system)
        if param.modifier == "missing":
            missing = param.values[0]
            assert isinstance(missing, MissingValue)
            return missing.missing == (not codings)
        hit = any(isinstance(v, TokenValue) and v.matches(s, c) for v in param.values for s, c in codings)
        return not hit if param.modifier == "not" else hit
    return check


def _date_filter(path: str) -> Callable[[dict[str, Any], ParsedParam], bool]:
    def check(resource: dict[str, Any], param: ParsedParam) -> bool:
        ranges = [r for r in (fhir_date_range(v) for v in values_at(resource, path) if isinstance(v, str)) if r]
        if param.modifier == "missing":
            missing = param.values[0]
            assert isinstance(missing, MissingValue)
            return missing.missing == (not ranges)
        return any(isinstance(v, DateValue) and v.matches(start, end) for v in param.values for start, end in ranges)
    return check


FILTERS: dict[str, Callable[[dict[str, Any], ParsedParam], bool]] = {
    "clinical-status": _token_filter("clinicalStatus"),
    "verification-status": _token_filter("verificationStatus"),
    "category": _token_filter("category", CATEGORY_SYSTEM),
    "criticality": _token_filter("criticality", CRITICALITY_SYSTEM),
    "date": _date_filter("recordedDate"),
}


def matches(resource: dict[str, Any], params: Iterable[ParsedParam]) -> bool:
    """True when the converted allergy satisfies every (AND) filter parameter."""
    return all(FILTERS[p.name](resource, p) for p in params if p.name in FILTERS)
