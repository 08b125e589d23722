"""R4 ServiceRequests from BaRS and e-RS, normalised the same way for every client.

What normalising does, and why:
- the id becomes the façade-issued id (server.sources.referrals.ids), so a later
  read knows which NHS API holds the referral;
- `subject` carries both `reference: Patient/{nhs}` (so `_include=ServiceRequest:patient`
  resolves it through the Patient provider) and the NHS number identifier; the legacy
  e-RS system http://fhir.nhs.net/Id/nhs-number is rewritten to https://fhir.nhs.uk/Id/nhs-number;
- UBRN identifiers keep (or get) the system https://fhir.nhs.uk/Id/UBRN so clients can
  cross-reference e-RS;
- known upstream shape slips are repaired from two tables (no per-case code): a
  repeating element sent as a single object is wrapped in a list (BaRS's own example
  sends `basedOn` as an object), and an element name in the wrong case is renamed
  (BaRS's example sends `PatientInstruction`). Anything else that is not R4 is left for
  validation to reject;
- no reference dangles (server.nhs.references): BaRS references are `urn:uuid:` ones into
  the booking message bundle (requester, encounter, basedOn, locationReference,
  supportingInfo...) or bare ids (the BaRS example's performer), and that bundle never
  reaches the façade, so there is no target to contain or include. Such a reference
  keeps its `identifier`/`display`/`type` without `reference`, and goes when it has
  none of those. The only relative references kept are `Patient/{nhs}` (served by the
  Patient provider); ServiceRequest ids here are façade-issued, so an upstream
  `ServiceRequest/{id}` would not resolve either. A subject with no NHS number anywhere
  goes too, and the resource then fails validation (never served with a made-up patient).
Pure functions, no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from server.nhs.nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number
from server.nhs.references import drop_dangling_references
from server.sources.referrals.ids import UBRN_SYSTEM

Resource = dict[str, Any]

ERS_REQUEST_ID_SYSTEM = "https://fhir.nhs.uk/Id/ers-request-id"
LEGACY_NHS_NUMBER_SYSTEM = "http://fhir.nhs.net/Id/nhs-number"

# The only relative references a served ServiceRequest keeps (module docstring).
SERVED_TYPES = frozenset({"Patient"})
# Identifier systems NHS APIs still send, and the one the façade writes.
SYSTEM_ALIASES: Mapping[str, str] = {LEGACY_NHS_NUMBER_SYSTEM: NHS_NUMBER_SYSTEM}

# R4 ServiceRequest elements with cardinality 0..*.
LIST_ELEMENTS = frozenset(
    {
        "contained",
        "extension",
        "modifierExtension",
        "identifier",
        "instantiatesCanonical",
        "instantiatesUri",
        "basedOn",
        "replaces",
        "category",
        "orderDetail",
        "performer",
        "locationCode",
        "locationReference",
        "reasonCode",
        "reasonReference",
        "insurance",
        "supportingInfo",
        "specimen",
        "bodySite",
        "note",
        "relevantHistory",
    }
)
# R4 ServiceRequest elements with cardinality 0..1 (or 1..1).
SINGLE_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "implicitRules",
        "language",
        "text",
        "requisition",
        "status",
        "intent",
        "priority",
        "doNotPerform",
        "code",
        "quantityQuantity",
        "quantityRatio",
        "quantityRange",
        "subject",
        "encounter",
        "occurrenceDateTime",
        "occurrencePeriod",
        "occurrenceTiming",
        "asNeededBoolean",
        "asNeededCodeableConcept",
        "authoredOn",
        "requester",
        "performerType",
        "patientInstruction",
    }
)
_BY_FOLDED = {name.casefold(): name for name in LIST_ELEMENTS | SINGLE_ELEMENTS}


def repair_shape(resource: Mapping[str, Any]) -> tuple[Resource, list[str]]:
    """Rename mis-cased R4 element names and wrap single values of repeating elements.
    Returns the repaired copy and what was repaired (element names only, never values)."""
    out: Resource = {}
    repairs: list[str] = []
    for key, value in resource.items():
        name = key
        if key not in _BY_FOLDED.values() and not key.startswith("_"):
            proper = _BY_FOLDED.get(key.casefold())
            if proper is not None and proper not in resource:
                name = proper
                repairs.append(f"renamed {key} to {proper}")
        if name in LIST_ELEMENTS and isinstance(value, dict):
            value = [value]
            repairs.append(f"wrapped {name} in a list")
        out[name] = value
    return out, repairs


def nhs_number_of(reference: Any) -> str | None:
    """The NHS number a Reference identifies (its identifier, or a Patient/{nhs} literal)."""
    if not isinstance(reference, dict):
        return None
    ident = reference.get("identifier")
    if isinstance(ident, dict):
        system = SYSTEM_ALIASES.get(ident.get("system") or "", ident.get("system"))
        if system == NHS_NUMBER_SYSTEM and isinstance(value := ident.get("value"), str):
            return value
    ref = reference.get("reference")
    if isinstance(ref, str) and ref.startswith("Patient/"):
        candidate = ref[len("Patient/") :]
        if is_valid_nhs_number(candidate):
            return candidate
    return None


def patient_subject(nhs_number: str, display: str | None = None) -> Resource:
    """A subject that both resolves (_include) and carries the NHS number."""
    subject: Resource = {
        "reference": f"Patient/{nhs_number}",
        "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number},
    }
    if display:
        subject["display"] = display
    return subject


def normalise_identifiers(identifiers: Any) -> list[Any]:
    out = []
    for ident in identifiers if isinstance(identifiers, list) else []:
        if isinstance(ident, dict) and ident.get("system") in SYSTEM_ALIASES:
            ident = {**ident, "system": SYSTEM_ALIASES[ident["system"]]}
        out.append(ident)
    return out


def ubrns_of(resource: Mapping[str, Any]) -> list[str]:
    """The UBRNs a ServiceRequest carries."""
    return [
        i["value"]
        for i in resource.get("identifier") or []
        if isinstance(i, dict) and i.get("system") == UBRN_SYSTEM and isinstance(i.get("value"), str)
    ]


def carries_ubrn(resource: Mapping[str, Any], ubrn: str) -> bool:
    """False when the resource names UBRNs and `ubrn` is not one of them: an e-RS
    answer about another referral (the NHS sandbox answers UBRN 000000070000 with the
    000000070002 referrals, see shared/nhs-examples/captured/ers_servicerequest_*)."""
    found = ubrns_of(resource)
    return not found or ubrn in found


def normalise_service_request(
    resource: Mapping[str, Any],
    *,
    facade_id: str,
    nhs_number: str | None = None,
    ubrn: str | None = None,
    upstream_request_id: str | None = None,
) -> tuple[Resource, list[str]]:
    """An upstream R4 ServiceRequest as the façade serves it (see the module docstring).

    `nhs_number` is the patient the upstream was asked about: it fills the subject only
    when the resource names no NHS number itself (BaRS subjects are often `urn:uuid:`
    references into a message bundle that never reaches us). `ubrn` is added as a UBRN
    identifier when missing; `upstream_request_id` (e-RS's own id) as ers-request-id.
    Returns the resource and the list of repairs made (shape, and references dropped)."""
    repaired, repairs = repair_shape(copy.deepcopy(dict(resource)))
    repaired["resourceType"] = "ServiceRequest"
    repaired["id"] = facade_id
    identifiers = normalise_identifiers(repaired.get("identifier"))
    if ubrn and ubrn not in ubrns_of({"identifier": identifiers}):
        identifiers.append({"system": UBRN_SYSTEM, "value": ubrn})
    if upstream_request_id and not any(
        isinstance(i, dict) and i.get("system") == ERS_REQUEST_ID_SYSTEM for i in identifiers
    ):
        identifiers.append({"system": ERS_REQUEST_ID_SYSTEM, "value": upstream_request_id})
    if identifiers:
        repaired["identifier"] = identifiers
    subject = repaired.get("subject")
    own = nhs_number_of(subject)
    number = own or nhs_number
    if number and is_valid_nhs_number(number):
        display = subject.get("display") if isinstance(subject, dict) else None
        repaired["subject"] = patient_subject(number, display)
    elif isinstance(subject, dict) and isinstance(subject.get("identifier"), dict):
        repaired["subject"] = {**subject, "identifier": normalise_identifiers([subject["identifier"]])[0]}
    resolvable, dropped = drop_dangling_references(repaired, served_types=SERVED_TYPES)
    return resolvable, repairs + dropped
