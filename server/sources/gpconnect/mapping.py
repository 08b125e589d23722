"""A GP Connect structured record (STU3 Bundle) -> R4 AllergyIntolerance resources.

GP Connect does not return allergies as a flat list: it returns Lists (Access Record
Structured, List and allergies guidance, nhsconnect/gpconnect):
- "Active Allergies" (SNOMED 886921000000105) and, when includeResolvedAllergies is
  true, "Resolved/Ended allergies" (1103671000000101; older records use code "TBD" and
  keep the resolved allergies as resources *contained* in that List);
- entries reference AllergyIntolerance resources in the bundle (or `#id` contained ones);
- an empty List says why: emptyReason `nilknown` = "No Known Allergies" was positively
  recorded; no emptyReason + a note = nothing recorded and nothing confirmed;
- List.extension warningCode marks incomplete lists (confidential items, record in transit).

Decisions (documented in the README's GP Connect section):
- "No known allergies" asserted on the active list becomes ONE R4 AllergyIntolerance
  coded SNOMED 716186003 "No known allergy", clinicalStatus active, verification
  confirmed (UK Core negation-handling pattern), so a client that only reads entries
  still sees the positive assertion. An empty list WITHOUT that assertion produces no
  resource: the searchset says so in an information issue (the GP's own note), because
  "nothing recorded" must not read as "no allergies".
- Transfer-degraded codes are kept exactly as sent (original term stays in code.text)
  and flagged with a warning issue; nothing is re-coded.
- An entry without clinicalStatus takes its list's status (active / resolved): list
  membership is what GP Connect uses to say it. entered-in-error drops clinicalStatus
  (R4 invariant ait-2).
- Ids are issued by the façade: `gpc-{nhs}-{16 hex}`, hashed from the record's stable
  GP Connect identifier (or, lacking one, its id), so the same allergy keeps its id
  across requests and a read knows which patient's record to ask for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mappings.stu3_to_r4.engine import apply_rules
from mappings.stu3_to_r4.rules import MappingSpec, load_mapping
from mappings.stu3_to_r4.transforms import MappingContext
from server.nhs.identifiers import NHS_NUMBER_SYSTEM

Resource = dict[str, Any]
ID_PREFIX = "gpc"
ISSUED_ID_RE = re.compile(r"^gpc-(?P<nhs>\d{10})-(?P<key>[0-9a-f]{16}|nka)$")
SNOMED = "http://snomed.info/sct"
ENTERED_IN_ERROR = "entered-in-error"
NO_ALLERGIES_NOTE = (
    "There are no allergies in the patient record but it has not been confirmed with the patient "
    "that they have no allergies (a 'no known allergies' code has not been recorded)."
)

# The STU3 -> R4 rules for AllergyIntolerance, as data beside this module.
ALLERGY_RULES = Path(__file__).with_name("allergy_intolerance.yaml")


@dataclass
class ConvertedAllergies:
    """R4 allergies from one structured record plus what the client should be told."""

    allergies: list[Resource] = field(default_factory=list)
    information: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def issued_id(nhs_number: str, key: str) -> str:
    """A valid FHIR id that encodes whose record the allergy came from."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"{ID_PREFIX}-{nhs_number}-{digest}"


def nka_id(nhs_number: str) -> str:
    return f"{ID_PREFIX}-{nhs_number}-nka"


def nhs_number_of(resource_id: str) -> str | None:
    """The NHS number encoded in an id this module issued, else None."""
    match = ISSUED_ID_RE.match(resource_id)
    return match.group("nhs") if match else None


def _source_key(allergy: Mapping[str, Any], list_kind: str) -> str:
    for ident in allergy.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            return f"{ident.get('system', '')}|{ident['value']}"
    return f"{list_kind}:{allergy.get('id', '')}"


def _codes(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [str(c.get("code")) for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]


def _list_kind(resource: Mapping[str, Any], spec: Mapping[str, Any]) -> str | None:
    codes = _codes(resource.get("code"))
    title = str(resource.get("title") or "")
    for kind in ("active_list", "resolved_list"):
        if any(c in spec[kind]["codes"] for c in codes) or title in spec[kind]["titles"]:
            return kind
    return None


def _note_text(resource: Mapping[str, Any]) -> str | None:
    texts = [str(n["text"]) for n in resource.get("note") or [] if isinstance(n, dict) and n.get("text")]
    return " ".join(texts) or None


def _list_warnings(lst: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    out = []
    for ext in lst.get("extension") or []:
        if not isinstance(ext, dict) or "listwarningcode" not in str(ext.get("url", "")).lower():
            continue
        code = ext.get("valueCode") or next(iter(_codes(ext.get("valueCodeableConcept"))), None)
        if code:
            out.append(spec["warning_codes"].get(code, f"GP Connect list warning '{code}'"))
    return out


def _nka(nhs_number: str, text: str | None, spec: Mapping[str, Any], mapping: MappingSpec) -> Resource:
    nka = spec["no_known_allergy"]
    vm = mapping.value_maps
    return {
        "resourceType": "AllergyIntolerance",
        "id": nka_id(nhs_number),
        "meta": {"profile": [mapping.target_profile]},
        "clinicalStatus": {
            "coding": [{"system": vm["clinical_status"]["system"], "code": "active", "display": "Active"}]
        },
        "verificationStatus": {
            "coding": [{"system": vm["verification_status"]["system"], "code": "confirmed", "display": "Confirmed"}]
        },
        "code": {
            "coding": [{"system": nka["system"], "code": nka["code"], "display": nka["display"]}],
            "text": text or nka["display"],
        },
        "patient": {
            "reference": f"Patient/{nhs_number}",
            "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number},
        },
    }


def convert_allergy(
    stu3: Mapping[str, Any], nhs_number: str, list_kind: str, ctx: MappingContext, mapping: MappingSpec | None = None
) -> Resource:
    """One STU3 AllergyIntolerance -> R4 through the declared rules, plus the list-level
    defaults and R4 invariants the rules cannot express."""
    mapping = mapping or load_mapping(ALLERGY_RULES)
    spec = mapping.extra["gpconnect"]
    r4: Resource = {
        "resourceType": "AllergyIntolerance",
        "id": issued_id(nhs_number, _source_key(stu3, list_kind)),
        "meta": {"profile": [mapping.target_profile]},
    }
    r4.update(apply_rules(mapping.rules, stu3, ctx))
    if "patient" not in r4:  # patient is 1..1 in both versions; the record is this patient's
        r4["patient"] = {
            "reference": f"Patient/{nhs_number}",
            "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number},
        }
    if ENTERED_IN_ERROR in _codes(r4.get("verificationStatus")):
        r4.pop("clinicalStatus", None)
    elif not (r4.get("clinicalStatus") or {}).get("coding"):
        default = spec[list_kind]["default_clinical_status"]
        vm = mapping.value_maps["clinical_status"]
        coding = [{"system": vm["system"], "code": default, "display": vm["codes"][default]}]
        r4["clinicalStatus"] = {**(r4.get("clinicalStatus") or {}), "coding": coding}
    return r4


def _index(bundle: Mapping[str, Any]) -> dict[str, Resource]:
    index: dict[str, Resource] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
            index[f"{resource['resourceType']}/{resource['id']}"] = dict(resource)
    return index


def allergies_from_structured_record(
    bundle: Mapping[str, Any], nhs_number: str, *, include_resolved: bool
) -> ConvertedAllergies:
    """Every allergy a structured record holds for the patient, converted to R4.

    Resolved allergies are converted only when `include_resolved` (the caller asked GP
    Connect for them); a resolved list sent unasked is ignored.
    """
    mapping = load_mapping(ALLERGY_RULES)
    spec = mapping.extra["gpconnect"]
    index = _index(bundle)
    out = ConvertedAllergies()
    ctx = MappingContext(nhs_number=nhs_number, resolve=index.get)
    lists = [
        e["resource"]
        for e in bundle.get("entry") or []
        if isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "List"
    ]
    degraded = 0
    for lst in lists:
        kind = _list_kind(lst, spec)
        if kind is None or (kind == "resolved_list" and not include_resolved):
            continue
        for warning in _list_warnings(lst, spec):
            out.warn(warning)
        contained = {f"#{c.get('id')}": c for c in lst.get("contained") or [] if isinstance(c, dict)}
        entries = [e for e in lst.get("entry") or [] if isinstance(e, dict)]
        found = 0
        for entry in entries:
            ref = (entry.get("item") or {}).get("reference")
            allergy = contained.get(ref) if isinstance(ref, str) and ref.startswith("#") else index.get(str(ref))
            if not allergy or allergy.get("resourceType") != "AllergyIntolerance":
                out.warn(
                    "The GP record lists an allergy entry that is not in the record it sent; "
                    "the allergy list may be incomplete"
                )
                continue
            found += 1
            r4 = convert_allergy(allergy, nhs_number, kind, ctx, mapping)
            if any(c in spec["degraded_codes"] for c in _codes(r4.get("code"))):
                degraded += 1
            out.allergies.append(r4)
        empty_codes = _codes(lst.get("emptyReason"))
        nil_known = any(c in spec["nil_known_codes"] for c in empty_codes)
        if found == 0 and not entries:
            if nil_known and kind == "active_list":
                out.allergies.append(_nka(nhs_number, (lst.get("emptyReason") or {}).get("text"), spec, mapping))
            elif not nil_known:
                label = "active" if kind == "active_list" else "resolved"
                out.information.append(f"No {label} allergies in the GP record: {_note_text(lst) or NO_ALLERGIES_NOTE}")
        elif nil_known and entries:
            out.warn(
                "The GP record asserts 'no known allergies' but also lists allergies; the listed allergies are returned"
            )
    if degraded:
        out.warn(
            f"{degraded} allergy record(s) are transfer-degraded (GP2GP): the original term is in "
            "code.text and must be reviewed before prescribing"
        )
    for warning in ctx.warnings:
        out.warn(warning)
    return out
