"""e-RS STU3 ReferralRequest (A005 `GET /STU3/ReferralRequest/{ubrn}`) -> R4 ServiceRequest.

The mapping is mostly data: the tables below say which STU3 elements are copied,
renamed or recoded; the few transforms that need code (subject, requester, the UBRN
identifier) are small named functions. Choices where STU3 and R4 differ:
- the STU3 id is the UBRN: it becomes an identifier with system https://fhir.nhs.uk/Id/UBRN;
- status: suspended -> on-hold, cancelled -> revoked (R4 request-status);
- specialty -> performerType (R4 has no specialty; performerType is "the desired type of
  performer", which is what an e-RS specialty names);
- serviceRequested[0] -> code, further ones -> orderDetail; description -> note.text;
  requester.agent -> requester (R4 has no onBehalfOf); recipient -> performer;
  context -> encounter; groupIdentifier -> requisition;
- every referral from e-RS is a referral: category is message-category-servicerequest
  `referral`, as e-RS's own R4 A041 answers;
- `contained` STU3 resources (shortlist List, search Parameters, Appointment,
  DocumentReference) are STU3 shapes that are not valid R4, so they are dropped, with
  every `#local` reference to them (extensions and supportingInfo). Extensions whose
  values are plain data (priority, referral state, commissioning org, dates) are kept
  unchanged;
- no reference dangles (server.nhs.references, as for every served ServiceRequest): a
  literal reference to an e-RS resource the façade does not serve (the
  Extension-eRS-Appointment-Reference-1 `Appointment/70009`, a `ReferralRequest/...`)
  would resolve against the façade's base to nothing, so it keeps only its
  identifier/display, and an extension whose value was nothing but such a reference goes;
- `definition` (STU3 ActivityDefinition refs) has no R4 ServiceRequest home and is dropped.
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.nhs.references import drop_dangling_references
from server.sources.referrals.ids import UBRN_SYSTEM
from server.sources.referrals.service_request_r4 import (
    SERVED_TYPES,
    nhs_number_of,
    normalise_identifiers,
    patient_subject,
)

Resource = dict[str, Any]

MESSAGE_CATEGORY_SYSTEM = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest"

# STU3 ReferralRequest.status -> R4 ServiceRequest.status
STATUS_MAP: Mapping[str, str] = {
    "draft": "draft",
    "active": "active",
    "suspended": "on-hold",
    "cancelled": "revoked",
    "completed": "completed",
    "entered-in-error": "entered-in-error",
    "unknown": "unknown",
}
# STU3 intent values that R4 ServiceRequest.intent also has.
INTENTS = frozenset({"proposal", "plan", "order"})
# Copied unchanged: same name, same R4 type.
COPIED = (
    "priority",
    "authoredOn",
    "occurrenceDateTime",
    "occurrencePeriod",
    "basedOn",
    "replaces",
    "reasonCode",
    "reasonReference",
    "note",
    "relevantHistory",
    "language",
    "implicitRules",
)
# Same value, R4 name.
RENAMED: Mapping[str, str] = {
    "context": "encounter",
    "recipient": "performer",
    "groupIdentifier": "requisition",
    "specialty": "performerType",
}


def _is_local(reference: Any) -> bool:
    return isinstance(reference, dict) and str(reference.get("reference", "")).startswith("#")


def _extensions(extensions: Any) -> list[Any]:
    """Extensions kept: those not pointing at a dropped contained resource."""
    return [e for e in extensions or [] if isinstance(e, dict) and not _is_local(e.get("valueReference"))]


def _subject(subject: Any) -> Resource | None:
    number = nhs_number_of(subject)
    if number:
        return patient_subject(number, subject.get("display") if isinstance(subject, dict) else None)
    if isinstance(subject, dict) and isinstance(subject.get("identifier"), dict):
        return {**subject, "identifier": normalise_identifiers([subject["identifier"]])[0]}
    return subject if isinstance(subject, dict) else None


def referral_request_to_service_request(stu3: Mapping[str, Any], facade_id: str) -> Resource:
    """One STU3 eRS-ReferralRequest-1 as an R4 ServiceRequest with the façade's id."""
    ubrn = stu3.get("id")
    out: Resource = {"resourceType": "ServiceRequest", "id": facade_id}
    version = (stu3.get("meta") or {}).get("versionId")
    if version:
        out["meta"] = {"versionId": str(version)}
    extensions = _extensions(stu3.get("extension"))
    if extensions:
        out["extension"] = extensions
    identifiers = normalise_identifiers(stu3.get("identifier"))
    if isinstance(ubrn, str) and not any(i.get("system") == UBRN_SYSTEM for i in identifiers if isinstance(i, dict)):
        identifiers.insert(0, {"system": UBRN_SYSTEM, "value": ubrn})
    if identifiers:
        out["identifier"] = identifiers
    out["status"] = STATUS_MAP.get(str(stu3.get("status")), "unknown")
    intent = stu3.get("intent")
    out["intent"] = intent if intent in INTENTS else "order"
    out["category"] = [{"coding": [{"system": MESSAGE_CATEGORY_SYSTEM, "code": "referral"}]}]
    for name in COPIED:
        if name in stu3:
            out[name] = stu3[name]
    for stu3_name, r4_name in RENAMED.items():
        if stu3_name in stu3:
            value = stu3[stu3_name]
            out[r4_name] = [value] if r4_name == "performer" and isinstance(value, dict) else value
    services = [s for s in stu3.get("serviceRequested") or [] if isinstance(s, dict)]
    if services:
        out["code"] = services[0]
        if services[1:]:
            out["orderDetail"] = services[1:]
    if isinstance(stu3.get("description"), str) and stu3["description"]:
        out["note"] = [*out.get("note", []), {"text": stu3["description"]}]
    agent = (stu3.get("requester") or {}).get("agent") if isinstance(stu3.get("requester"), dict) else None
    if isinstance(agent, dict):
        out["requester"] = agent
    subject = _subject(stu3.get("subject"))
    if subject is not None:
        out["subject"] = subject
    supporting = [s for s in stu3.get("supportingInfo") or [] if isinstance(s, dict) and not _is_local(s)]
    if supporting:
        out["supportingInfo"] = supporting
    resolvable, _ = drop_dangling_references(out, served_types=SERVED_TYPES)
    return resolvable
