"""AllergyIntolerance search -> what to ask GP Connect. Pure.

GP Connect takes one NHS number and two switches, nothing else, so:
- `patient` (any form: id, Patient/id, URL, :identifier / .identifier with the NHS
  number system) must name exactly one patient; its NHS number is Modulus-11 checked
  here, so an invalid one never reaches GP Connect;
- `clinical-status` decides includeResolvedAllergies: resolved allergies are asked for
  only when the search can match resolved or inactive ones (GP Connect guidance keeps
  them apart so they are never mistaken for active ones); without clinical-status the
  search returns active allergies and says so in an information issue. The switch is
  coarse (a superset of what the search can match), so clinical-status is evaluated
  locally as well;
- every parameter but `patient` is declared `evaluated="local"`: the core applies it
  to the converted R4 resources (server.fhir.search_match), not this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_params import ParsedParam, TokenValue
from server.fhir.search_request import SearchRequest
from server.providers.patient_reference import searched_nhs_numbers

CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CATEGORY_SYSTEM = "http://hl7.org/fhir/allergy-intolerance-category"
CRITICALITY_SYSTEM = "http://hl7.org/fhir/allergy-intolerance-criticality"
CLINICAL_STATUSES = frozenset({"active", "inactive", "resolved"})
NOT_ACTIVE = frozenset({"inactive", "resolved"})
ACTIVE_ONLY_NOTE = (
    "Only active allergies are returned unless clinical-status asks for resolved or inactive ones "
    "(GP Connect keeps resolved allergies apart)"
)


@dataclass(frozen=True)
class GPConnectQuery:
    """What to ask GP Connect for one search."""

    nhs_number: str
    include_resolved: bool
    can_match: bool  # False when the filters exclude every clinical status: no call needed


def patient_nhs_number(request: SearchRequest) -> str:
    """The one NHS number the search is about; 400 when absent, several, or invalid."""
    wanted = searched_nhs_numbers(request, ("patient",))
    if wanted is None:
        raise InvalidSearchParameter(
            "An AllergyIntolerance search needs patient (GP Connect answers for one patient "
            "at a time), e.g. patient=9000000009"
        )
    if not wanted or len(wanted) > 1:
        raise InvalidSearchParameter("Parameter 'patient' must name exactly one patient")
    return wanted.pop()


def _statuses(param: ParsedParam) -> frozenset[str]:
    """The clinical statuses one clinical-status occurrence can match (a superset: the
    core then evaluates the parameter exactly)."""
    if param.modifier == "missing":
        return CLINICAL_STATUSES  # entered-in-error records (no status) may sit in either list
    if param.modifier == "text":
        return CLINICAL_STATUSES  # a display or text may name any status
    codes: set[str] = set()
    for value in param.values:
        assert isinstance(value, TokenValue)
        if value.any_system or value.system in (None, CLINICAL_SYSTEM):
            codes |= CLINICAL_STATUSES if value.code is None else {value.code}
    return frozenset(CLINICAL_STATUSES - codes if param.modifier == "not" else codes & CLINICAL_STATUSES)


def gpconnect_query(request: SearchRequest) -> GPConnectQuery:
    """Validate the search and decide what GP Connect must be asked."""
    nhs = patient_nhs_number(request)
    status_params = request.get("clinical-status")
    if not status_params:
        return GPConnectQuery(nhs, include_resolved=False, can_match=True)
    possible = CLINICAL_STATUSES
    for param in status_params:
        possible = possible & _statuses(param)
    return GPConnectQuery(nhs, include_resolved=bool(possible & NOT_ACTIVE), can_match=bool(possible))
