"""Clinical Prescription Tracker shapes -> R4 MedicationRequest. Pure, no I/O.

CPT answers in two shapes (reference: shared/reference/nhs-apis.md s.2.1, examples in
shared/nhs-examples/eps-tracker/):
- `GET /RequestGroup?nhsNumber=` : a searchset of one Patient (include) and one summary
  RequestGroup per prescription *issue* (an eRD with 7 issues is listed 7 times, the
  issue number being `Extension-EPS-RepeatInformation.numberOfRepeatsIssued`);
- `GET /RequestGroup/{id}[?issueNumber=]` : a bundle with the RequestGroup, one
  MedicationRequest per line item, MedicationDispenses, the Patient and PractitionerRoles,
  all linked by `urn:uuid:` references that mean nothing outside that bundle.

The conversion keeps each line item's MedicationRequest as CPT wrote it and changes only
what cannot leave the bundle: the id becomes a façade id (server.sources.cpt.ids), subject
becomes `Patient/{nhs}` plus the NHS number identifier, other `urn:uuid:` references
become logical references by identifier (ODS code), authoredOn comes from the
RequestGroup, and the prescription-level extensions (status history, repeat information,
prescription type) are carried onto each item. Identifiers (prescription-order-item-number,
groupIdentifier prescription-order-number) and the item's dispensing-status extension are
kept untouched so clients can cross-reference EPS.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from server.nhs.identifiers import NHS_NUMBER_SYSTEM
from server.sources.cpt.ids import UnissuableId, medication_request_id

Resource = dict[str, Any]

ORDER_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/prescription-order-number"
ITEM_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/prescription-order-item-number"
SD = "https://fhir.nhs.uk/StructureDefinition/"
REPEAT_INFORMATION = SD + "Extension-EPS-RepeatInformation"
DISPENSING_INFORMATION = SD + "Extension-EPS-DispensingInformation"

# Prescription-level extensions of the RequestGroup that describe every line item.
CARRIED_EXTENSIONS = (
    SD + "Extension-EPS-PrescriptionStatusHistory",
    REPEAT_INFORMATION,
    SD + "Extension-DM-PrescriptionType",
)
# Elements of the item that are rewritten rather than copied.
REWRITTEN = frozenset({"id", "meta", "subject", "text", "contained"})
MEDICATION_REQUEST_STATUS = frozenset(
    {"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown"}
)
REQUEST_INTENT = frozenset(
    {"proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"}
)
# MedicationRequest elements of type Reference (R4), where CPT's quirks are repaired.
REFERENCE_PATHS = (
    "requester",
    "performer",
    "recorder",
    "dispenseRequest.performer",
    "medicationReference",
    "encounter",
    "supportingInformation",
    "reasonReference",
    "basedOn",
    "insurance",
    "priorPrescription",
    "detectedIssue",
    "eventHistory",
)
# RequestGroup.status (request-status) -> MedicationRequest.status, for items without one.
_FROM_REQUEST_STATUS = {"revoked": "cancelled"}


class CPTShapeError(ValueError):
    """The CPT answer lacks something the conversion needs (not what the API promises)."""


@dataclass(frozen=True)
class PrescriptionRef:
    """One row of a CPT prescription search: one issue of one prescription."""

    prescription_id: str
    issue: int | None
    nhs_number: str | None
    authored_on: str | None


def _entries(bundle: Any) -> list[dict[str, Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise CPTShapeError("expected a Bundle")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise CPTShapeError("Bundle.entry is not a list")
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _index(entries: Iterable[dict[str, Any]]) -> dict[str, Resource]:
    """Resources by every name a reference inside the bundle may use."""
    index: dict[str, Resource] = {}
    for entry in entries:
        resource = entry["resource"]
        if isinstance(entry.get("fullUrl"), str):
            index[entry["fullUrl"]] = resource
        if resource.get("id"):
            index[f"{resource.get('resourceType')}/{resource['id']}"] = resource
            index[f"urn:uuid:{resource['id']}"] = resource
    return index


def identifier_value(resource: Resource, system: str) -> str | None:
    """The value of the first identifier with `system` (identifier may be a list or one)."""
    idents = resource.get("identifier")
    for ident in idents if isinstance(idents, list) else [idents]:
        if isinstance(ident, dict) and ident.get("system") == system and isinstance(value := ident.get("value"), str):
            return value
    return None


def _extension(resource: Resource, url: str) -> dict[str, Any] | None:
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext
    return None


def issue_number(request_group: Resource) -> int | None:
    """The issue of a repeat / eRD prescription; None for an acute (no repeat information)."""
    ext = _extension(request_group, REPEAT_INFORMATION)
    if ext is None:
        return None
    for sub in ext.get("extension") or []:
        if isinstance(sub, dict) and sub.get("url") == "numberOfRepeatsIssued":
            value = sub.get("valueInteger")
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                return value
    raise CPTShapeError("repeat information without a valid numberOfRepeatsIssued")


def _patient_nhs_number(subject: Any, index: dict[str, Resource]) -> str | None:
    if not isinstance(subject, dict):
        return None
    ident = subject.get("identifier")
    if (
        isinstance(ident, dict)
        and ident.get("system") == NHS_NUMBER_SYSTEM
        and isinstance(value := ident.get("value"), str)
    ):
        return value
    patient = index.get(subject.get("reference") or "")
    return identifier_value(patient, NHS_NUMBER_SYSTEM) if patient else None


# What a CPT prescription search may list (shared/reference/nhs-apis.md s.2.1): the
# Patient, one RequestGroup per prescription issue, OperationOutcomes for excluded ones.
SEARCH_ENTRY_TYPES = frozenset({"Patient", "RequestGroup", "OperationOutcome"})


def prescription_refs(search_bundle: Any) -> list[PrescriptionRef]:
    """The prescription issues a CPT search lists, in CPT's order.

    Only an answer in the shape CPT promises is read: a Bundle whose entries are all
    resources of SEARCH_ENTRY_TYPES. Anything else (a nested Bundle of MedicationRequests,
    as NHS's own sandbox answers, or an entry without a resource) is CPTShapeError, never
    "no prescriptions": for a medication list, an answer the façade cannot read must not
    look like an empty one. A Bundle with no RequestGroup (no entries, or only the
    Patient) is a patient without prescriptions."""
    entries = _entries(search_bundle)
    if len(entries) != len(search_bundle.get("entry") or []):
        raise CPTShapeError("a searchset entry has no resource")
    unknown = sorted({str(e["resource"].get("resourceType")) for e in entries} - SEARCH_ENTRY_TYPES)
    if unknown:
        raise CPTShapeError(f"the searchset holds {', '.join(unknown)} entries, not prescriptions (RequestGroup)")
    index = _index(entries)
    refs: list[PrescriptionRef] = []
    for entry in entries:
        group = entry["resource"]
        if group.get("resourceType") != "RequestGroup":
            continue
        prescription_id = identifier_value(group, ORDER_NUMBER_SYSTEM)
        if not prescription_id:
            raise CPTShapeError("RequestGroup without a prescription-order-number")
        authored = group.get("authoredOn")
        refs.append(
            PrescriptionRef(
                prescription_id=prescription_id,
                issue=issue_number(group),
                nhs_number=_patient_nhs_number(group.get("subject"), index),
                authored_on=authored if isinstance(authored, str) else None,
            )
        )
    return refs


def _logical(target: Resource) -> dict[str, Any] | None:
    """A reference by identifier to what a bundle-local resource stands for."""
    rtype = target.get("resourceType")
    if rtype == "PractitionerRole":
        org = target.get("organization")
        ident = org.get("identifier") if isinstance(org, dict) else None
        if isinstance(ident, dict) and ident.get("value"):
            return {"type": "Organization", "identifier": ident}
        return None
    idents = target.get("identifier")
    first = (idents[0] if idents else None) if isinstance(idents, list) else idents
    if isinstance(first, dict) and first.get("value") and isinstance(rtype, str):
        out: dict[str, Any] = {"type": rtype, "identifier": {k: first[k] for k in ("system", "value") if k in first}}
        if isinstance(target.get("name"), str):
            out["display"] = target["name"]
        return out
    return None


def _localise(value: Any, index: dict[str, Resource]) -> Any:
    """Rewrite every bundle-local reference (urn:uuid:, or unresolvable relative) inside
    `value`: by identifier when the target has one, else keep only identifier/display."""
    if isinstance(value, list):
        out_list = [_localise(v, index) for v in value]
        return [v for v in out_list if v is not None]
    if not isinstance(value, dict):
        return value
    ref = value.get("reference")
    if isinstance(ref, str) and ref.startswith("urn:"):
        target = index.get(ref)
        logical = _logical(target) if target else None
        kept = {k: v for k, v in value.items() if k not in ("reference",)}
        if logical is not None:
            return {**logical, **{k: v for k, v in kept.items() if k in ("display", "extension")}}
        return kept if ("identifier" in kept or "display" in kept) else None
    out: dict[str, Any] = {}
    for key, item in value.items():
        localised = _localise(item, index)
        if localised is not None and localised != [] and localised != {}:
            out[key] = localised
    return out


def _single_identifier(reference: Any) -> Any:
    """CPT writes Reference.identifier as a list (`performer: {identifier: [..]}`); R4
    allows one Identifier there (eps-tracker clinicalView examples). Keep the first."""
    if isinstance(reference, dict) and isinstance(reference.get("identifier"), list):
        first = next((i for i in reference["identifier"] if isinstance(i, dict)), None)
        fixed = {k: v for k, v in reference.items() if k != "identifier"}
        if first is not None:
            fixed["identifier"] = first
        return fixed if fixed else None
    return reference


def _repair_references(body: Resource) -> Resource:
    for path in REFERENCE_PATHS:
        *parents, leaf = path.split(".")
        holder: Any = body
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or leaf not in holder:
            continue
        value = holder[leaf]
        repaired = (
            [r for r in map(_single_identifier, value) if r] if isinstance(value, list) else _single_identifier(value)
        )
        if repaired:
            holder[leaf] = repaired
        else:
            del holder[leaf]
    return body


def _status(item: Resource, group: Resource) -> str:
    status = item.get("status")
    if isinstance(status, str) and status in MEDICATION_REQUEST_STATUS:
        return status
    group_status: Any = group.get("status")  # upstream JSON: any value, or missing
    mapped = _FROM_REQUEST_STATUS.get(group_status, group_status)
    return mapped if mapped in MEDICATION_REQUEST_STATUS else "unknown"


def _intent(item: Resource, group: Resource) -> str:
    for candidate in (item.get("intent"), group.get("intent")):
        if isinstance(candidate, str) and candidate in REQUEST_INTENT:
            return candidate
    return "order"


def subject_reference(nhs_number: str) -> dict[str, Any]:
    """Literal reference (resolved by the Patient provider for _include) plus the NHS number."""
    return {"reference": f"Patient/{nhs_number}", "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}}


@dataclass(frozen=True)
class PrescriptionContext:
    """What every line item of one prescription issue shares."""

    prescription_id: str
    issue: int | None
    nhs_number: str
    group: Resource


def medication_request_from_item(
    item: Resource, ctx: PrescriptionContext, index: dict[str, Resource], resource_id: str
) -> Resource:
    """One CPT line item as a self-contained R4 MedicationRequest with id `resource_id`."""
    body = {k: copy.deepcopy(v) for k, v in item.items() if k not in REWRITTEN and k != "resourceType"}
    body = _repair_references(_localise(body, index))
    out: Resource = {"resourceType": "MedicationRequest", "id": resource_id}
    out.update(body)
    out["status"] = _status(item, ctx.group)
    out["intent"] = _intent(item, ctx.group)
    out["subject"] = subject_reference(ctx.nhs_number)
    if not out.get("groupIdentifier"):
        out["groupIdentifier"] = {"system": ORDER_NUMBER_SYSTEM, "value": ctx.prescription_id}
    authored = ctx.group.get("authoredOn")
    if "authoredOn" not in out and isinstance(authored, str):
        out["authoredOn"] = authored
    extensions = list(out.get("extension") or [])
    have = {e.get("url") for e in extensions if isinstance(e, dict)}
    for url in CARRIED_EXTENSIONS:
        ext = _extension(ctx.group, url)
        if ext is not None and url not in have:
            extensions.append(_localise(copy.deepcopy(ext), index))
    if extensions:
        out["extension"] = extensions
    if "medicationCodeableConcept" not in out and "medicationReference" not in out:
        out["medicationCodeableConcept"] = {"text": "Unknown medication (not given by the Prescription Tracker)"}
    return out


def _line_items(entries: list[dict[str, Any]], group: Resource, index: dict[str, Resource]) -> list[Resource]:
    """The group's MedicationRequests in the order its actions list them, then any others."""
    ordered: list[Resource] = []
    seen: set[int] = set()

    def walk(actions: Any) -> None:
        for action in actions if isinstance(actions, list) else []:
            if not isinstance(action, dict):
                continue
            ref = (action.get("resource") or {}).get("reference") if isinstance(action.get("resource"), dict) else None
            target = index.get(ref) if isinstance(ref, str) else None
            if target is not None and target.get("resourceType") == "MedicationRequest" and id(target) not in seen:
                seen.add(id(target))
                ordered.append(target)
            walk(action.get("action"))

    walk(group.get("action"))
    for entry in entries:
        resource = entry["resource"]
        if resource.get("resourceType") == "MedicationRequest" and id(resource) not in seen:
            seen.add(id(resource))
            ordered.append(resource)
    return ordered


def medication_requests(
    detail_bundle: Any,
    *,
    issue: int | None = None,
    nhs_number: str | None = None,
    prescription_id: str | None = None,
) -> list[Resource]:
    """Every line item of a CPT prescription-details bundle as R4 MedicationRequests.

    `issue` is the issue asked for (from the search row or the decoded id); when None the
    RequestGroup's own repeat information decides. `nhs_number` is used only when the
    bundle names no patient. `prescription_id` is the prescription asked for: details of
    another prescription (or, for a repeat, of another issue than `issue`) are
    CPTShapeError, never served under the asked one's ids. Details with no line item
    are CPTShapeError too (a prescription without items is not one the façade can read).
    """
    entries = _entries(detail_bundle)
    index = _index(entries)
    groups = [e for e in entries if e["resource"].get("resourceType") == "RequestGroup"]
    matched = [e for e in groups if (e.get("search") or {}).get("mode") == "match"] or groups
    group: Resource = matched[0]["resource"] if matched else {}
    items = _line_items(entries, group, index)
    found_id = identifier_value(group, ORDER_NUMBER_SYSTEM) if group else None
    if not found_id:
        found_id = next(
            (v for v in ((i.get("groupIdentifier") or {}).get("value") for i in items) if isinstance(v, str) and v),
            None,
        )
    if not found_id:
        raise CPTShapeError("no prescription-order-number in the prescription details")
    if prescription_id is not None and found_id != prescription_id:
        raise CPTShapeError("the prescription details are for another prescription than the one asked for")
    if not items:
        raise CPTShapeError("the prescription details hold no line item (MedicationRequest)")
    found_issue = issue_number(group) if group else None
    if issue is not None and found_issue is not None and found_issue != issue:
        raise CPTShapeError("the prescription details are for another issue than the one asked for")
    patient_nhs = _patient_nhs_number(group.get("subject"), index) if group else None
    if patient_nhs is None:
        patient_nhs = next((n for n in (_patient_nhs_number(i.get("subject"), index) for i in items) if n), None)
    patient_nhs = patient_nhs or nhs_number
    if not patient_nhs:
        raise CPTShapeError("the prescription names no patient NHS number")
    ctx = PrescriptionContext(
        prescription_id=found_id,
        issue=issue if issue is not None else found_issue,
        nhs_number=patient_nhs,
        group=group,
    )
    out: list[Resource] = []
    issued: set[str] = set()
    for item in items:
        item_number = identifier_value(item, ITEM_NUMBER_SYSTEM)
        if not item_number:
            raise CPTShapeError("a line item has no prescription-order-item-number")
        try:
            resource_id = medication_request_id(ctx.prescription_id, ctx.issue, item_number)
        except UnissuableId as exc:
            raise CPTShapeError(str(exc)) from None
        if resource_id in issued:
            raise CPTShapeError("two line items share a prescription-order-item-number")
        issued.add(resource_id)
        out.append(medication_request_from_item(item, ctx, index, resource_id))
    return out
