"""ServiceRequest search -> which NHS API to ask. Pure.

Routing (no NHS API answers every ServiceRequest search, see nhs-apis.md s.2):
- a UBRN (`identifier=https://fhir.nhs.uk/Id/UBRN|<12 digits>`, or a bare 12-digit
  `identifier=<ubrn>`) goes to e-RS, the authority for UBRNs; a patient given as well
  is evaluated on e-RS's answer;
- otherwise a patient (`patient`, `subject`, `patient:identifier`, `patient.identifier`,
  `subject:Patient`, as an NHS number) goes to BaRS; other identifiers are evaluated
  on BaRS's answer;
- neither is a 400 saying what is needed. NHS numbers are Modulus-11 checked and UBRNs
  format checked here, so a bad one is a 400 before any NHS API is called.
Repeated parameters are AND (their sets intersect), comma values are OR (one upstream
call per value). Neither API filters by anything else, and which one answers depends
on the search, so every parameter is declared `evaluated="local"`: the core's one
matcher (server.fhir.search_match) applies it to whatever the upstream returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_params import ParsedParam, TokenValue, all_of
from server.fhir.search_request import SearchRequest
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.providers.patient_reference import searched_nhs_numbers
from server.sources.referrals.ids import UBRN_SYSTEM, is_ubrn


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
                    f"Parameter 'identifier': a UBRN is twelve digits ({UBRN_SYSTEM}|000000070000)"
                )
            found.add(value.code)
        elif value.any_system and value.code and is_ubrn(value.code):
            found.add(value.code)
        else:
            return None  # an OR with a non-UBRN identifier cannot be answered by e-RS alone
    return found


def plan_search(request: SearchRequest) -> Plan:
    """Which NHS API answers this search; raises a 400 naming what is needed."""
    patients = searched_nhs_numbers(request)
    ubrn_sets = [_ubrns(p) for p in request.get("identifier")]
    ubrns = all_of(s for s in ubrn_sets if s is not None)
    if ubrns is not None:
        return ByUbrn(tuple(sorted(ubrns)))
    if patients is not None:
        return ByPatient(tuple(sorted(patients)))
    raise InvalidSearchParameter(
        "A ServiceRequest search needs a patient (patient=<NHS number> or "
        f"patient:identifier={NHS_NUMBER_SYSTEM}|<NHS number>; answered by BaRS) or a UBRN "
        f"(identifier={UBRN_SYSTEM}|<UBRN>; answered by e-RS)"
    )
