"""A patient named by NHS number -> validated NHS numbers, or the 400 that says why not. Pure.

Every NHS API behind the façade keys patients by NHS number, so every provider reads
`patient` / `subject` the same way: `9000000009`, `Patient/9000000009`, an absolute URL
ending in `Patient/9000000009`, `:Patient` (type modifier), or `:identifier` /
`.identifier` with the NHS number system or no system. Numbers are Modulus-11 checked
here, so an invalid one is a 400 before any NHS API is called (nhs-apis.md s.1: PDS
answers it with INVALID_RESOURCE_ID; the façade answers the same code itself).

Repeated parameters are AND, so the numbers of a search are the intersection of every
occurrence's (searched_nhs_numbers); how many it allows stays each provider's policy.
"""

from __future__ import annotations

from server.fhir.errors import BadRequest, InvalidSearchParameter
from server.fhir.outcome import nhs_details
from server.fhir.search_params import ParsedParam, ReferenceValue, SearchParamSpec, all_of
from server.fhir.search_request import SearchRequest
from server.nhs.nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number

_PATIENT_MODIFIERS = (None, "identifier", "Patient")
PATIENT_PARAMS = ("patient", "subject")


def check_nhs_number(number: str, *, param: str | None = None) -> str:
    """`number` when it passes Modulus-11; else a 400 with PDS's INVALID_RESOURCE_ID code,
    naming the search parameter `param` (a read id when None)."""
    if is_valid_nhs_number(number):
        return number
    where = f"Parameter '{param}': " if param else ""
    error = InvalidSearchParameter if param else BadRequest
    raise error(
        f"{where}'{number[:20]}' is not a valid NHS number (Modulus-11 check failed)",
        details=nhs_details("INVALID_RESOURCE_ID", "Resource Id is invalid"),
    )


def _number(value: object, label: str, name: str) -> str | None:
    """The NHS number one reference value carries (None or "" when it names none)."""
    assert isinstance(value, ReferenceValue)
    if value.identifier is not None:
        token = value.identifier
        if not token.any_system and token.system != NHS_NUMBER_SYSTEM:
            raise InvalidSearchParameter(f"Parameter '{label}' takes an NHS number: {NHS_NUMBER_SYSTEM}|<NHS number>")
        return token.code
    if value.resource_type not in (None, "Patient"):
        raise InvalidSearchParameter(f"Parameter '{name}' must refer to a Patient (by NHS number)")
    return value.id


def nhs_numbers(param: ParsedParam) -> set[str]:
    """The NHS numbers one occurrence of a patient reference parameter names (its
    comma values OR-ed); 400 naming the parameter for any value that is not one."""
    if param.modifier == "missing":
        raise InvalidSearchParameter(
            f"Parameter '{param.name}:missing' is not supported: the search must name the patient by NHS number"
        )
    if param.modifier not in _PATIENT_MODIFIERS:
        raise InvalidSearchParameter(f"Modifier ':{param.modifier}' is not supported on '{param.name}'")
    label = f"{param.name}:{param.modifier}" if param.modifier else param.name
    numbers: set[str] = set()
    for value in param.values:
        number = _number(value, label, param.name)
        if not number:
            raise InvalidSearchParameter(f"Parameter '{label}' needs an NHS number")
        numbers.add(check_nhs_number(number, param=label))
    return numbers


def searched_nhs_numbers(request: SearchRequest, names: tuple[str, ...] = PATIENT_PARAMS) -> set[str] | None:
    """The NHS numbers a search's patient parameters (`names`, every occurrence AND-ed)
    allow; None when the search names no patient. 400 for any value that is not one."""
    return all_of(nhs_numbers(param) for name in names for param in request.get(name))


def patient_and_subject(resource_type: str, patient_doc: str, subject_doc: str) -> tuple[SearchParamSpec, ...]:
    """The `patient` and `subject` search parameters of a clinical type whose subject is
    always a Patient named by NHS number: evaluated locally on `subject`, and only with
    the :identifier modifier (an NHS number is needed, so no :missing)."""
    base = "http://hl7.org/fhir/SearchParameter/"
    common = dict(path="subject", target_types=("Patient",), modifiers=("identifier",), evaluated="local")
    return (
        SearchParamSpec("patient", "reference", patient_doc, base + "clinical-patient", **common),  # type: ignore[arg-type]
        SearchParamSpec("subject", "reference", subject_doc, base + f"{resource_type}-subject", **common),  # type: ignore[arg-type]
    )
