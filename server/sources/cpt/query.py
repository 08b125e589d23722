"""FHIR MedicationRequest search -> what to ask the Prescription Tracker. Pure; raises
400s naming the parameter.

CPT can only list by NHS number or fetch one prescription by id, so:
- patient / subject / patient.identifier give the NHS numbers (Modulus-11 checked here,
  so an invalid number never reaches CPT); several parameters are AND (intersection),
  comma values are OR (one CPT search each);
- identifier=https://fhir.nhs.uk/Id/prescription-order-number|X fetches prescription X
  directly (one call instead of a search plus details); other identifier values
  (item numbers, bare codes) only filter;
- every parameter (patient and identifier too: CPT's answer is a superset of theirs when
  a prescription is fetched by id) is declared `evaluated="local"` and applied by the
  core's one matcher (server.fhir.search_match) to the converted resources.
A search naming neither a patient nor a prescription is refused: CPT has no other entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.fhir.errors import BadRequest, InvalidSearchParameter
from server.fhir.search_params import ParsedParam, TokenValue, all_of
from server.fhir.search_request import SearchRequest
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM
from server.providers.patient_reference import searched_nhs_numbers
from server.sources.cpt.mapping import ORDER_NUMBER_SYSTEM

MAX_UPSTREAM_KEYS = 10  # OR-ed NHS numbers or prescription ids per search


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
    numbers = searched_nhs_numbers(request)
    named = (_order_numbers(param) for param in request.get("identifier"))
    prescription_ids = all_of(codes for codes in named if codes is not None)
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
