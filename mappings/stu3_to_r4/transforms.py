"""The named transforms a mapping file may use, and the context they run in.

Each transform takes one STU3 value, its rule's `args` and the MappingContext, and
returns the R4 value or None (= leave the target out). A transform that drops
something the source said records a warning in the context, so the client is told
(searchset OperationOutcome) rather than losing data silently. Pure: no I/O.

The list is deliberately short; a mapping that needs arbitrary code is a sign that
this list lacks one entry.
"""

from __future__ import annotations

import copy as _copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from server.nhs.identifiers import NHS_NUMBER_SYSTEM, ODS_SYSTEM, SDS_USER_ID_SYSTEM

# STU3 CareConnect puts the SNOMED description id (and chosen term) in one complex
# extension; R4 uses HL7's coding-sctdescid plus UK Core's CodingSCTDescDisplay.
STU3_SCT_DESC_ID = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-coding-sctdescid"
R4_SCT_DESC_ID = "http://hl7.org/fhir/StructureDefinition/coding-sctdescid"
R4_SCT_DESC_DISPLAY = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-CodingSCTDescDisplay"

# FHIR date / dateTime (identical in STU3 and R4): a time needs seconds and a zone.
DATE_TIME_RE = re.compile(
    r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$"
)


@dataclass
class MappingContext:
    """What transforms may know beyond the value: whose record, and the bundle around it.

    `resolve` turns a bundle-local literal reference ("PractitionerRole/abc") into the
    resource in the same GP Connect bundle, or None.
    """

    nhs_number: str
    resolve: Callable[[str], dict[str, Any] | None] = lambda ref: None
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


Transform = Callable[[Any, Mapping[str, Any], MappingContext], Any]


def copy(value: Any, args: Mapping[str, Any], ctx: MappingContext) -> Any:
    """Same shape in STU3 and R4 (Identifier, Age, Period, Range, string)."""
    return _copy.deepcopy(value)


def date_time(value: Any, args: Mapping[str, Any], ctx: MappingContext) -> str | None:
    """A FHIR date/dateTime kept as-is; anything else is dropped with a warning."""
    if isinstance(value, str) and DATE_TIME_RE.match(value):
        return value
    ctx.warn(f"A date the GP system sent was not a FHIR dateTime and was left out: {str(value)[:40]!r}")
    return None


def code_map(value: Any, args: Mapping[str, Any], ctx: MappingContext) -> str | None:
    """A plain code through a value map (code -> code); unknown codes are dropped."""
    codes = args["value_map"]["codes"]
    if isinstance(value, str) and value in codes:
        return str(codes[value])
    ctx.warn(f"Code {str(value)[:40]!r} is not in the R4 value set and was left out")
    return None


def code_to_codeable_concept(value: Any, args: Mapping[str, Any], ctx: MappingContext) -> dict[str, Any] | None:
    """STU3 plain status code -> R4 CodeableConcept in the value map's code system."""
    vm = args["value_map"]
    if not isinstance(value, str) or value not in vm["codes"]:
        ctx.warn(f"Status code {str(value)[:40]!r} is not an R4 code and was left out")
        return None
    return {"coding": [{"system": vm["system"], "code": value, "display": vm["codes"][value]}]}


def _sct_extensions(stu3_ext: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts = {str(p.get("url", "")).lower(): p for p in stu3_ext.get("extension") or [] if isinstance(p, dict)}
    out: list[dict[str, Any]] = []
    desc_id = (parts.get("descriptionid") or {}).get("valueId")
    if desc_id:
        out.append({"url": R4_SCT_DESC_ID, "valueId": str(desc_id)})
    display = (parts.get("descriptiondisplay") or {}).get("valueString")
    if display:
        out.append({"url": R4_SCT_DESC_DISPLAY, "valueString": str(display)})
    return out


def _coding(coding: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: _copy.deepcopy(v) for k, v in coding.items() if k != "extension"}
    extensions: list[dict[str, Any]] = []
    for ext in coding.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == STU3_SCT_DESC_ID:
            extensions.extend(_sct_extensions(ext))
        elif isinstance(ext, dict):
            extensions.append(_copy.deepcopy(dict(ext)))
    if extensions:
        out["extension"] = extensions
    return out


def codeable_concept(value: Any, args: Mapping[str, Any], ctx: MappingContext) -> dict[str, Any] | None:
    """CodeableConcept with STU3 coding extensions rewritten to their R4 equivalents.

    Codes and text are kept exactly: a transfer-degraded code stays that code with the
    original term in `text` (GP Connect allergies guidance: consumers must not re-code).
    """
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    codings = [_coding(c) for c in value.get("coding") or [] if isinstance(c, dict)]
    if codings:
        out["coding"] = codings
    if value.get("text"):
        out["text"] = value["text"]
    return out or None


def patient_reference(value: Any, args: Mapping[str, Any], ctx: MappingContext) -> dict[str, Any]:
    """The façade's Patient (id = NHS number, served by the Patient provider) plus the
    NHS number identifier. The STU3 reference points inside the GP bundle, so it is
    replaced, not copied."""
    return {
        "reference": f"Patient/{ctx.nhs_number}",
        "identifier": {"system": NHS_NUMBER_SYSTEM, "value": ctx.nhs_number},
    }


def _name_text(resource: Mapping[str, Any]) -> str | None:
    names = resource.get("name")
    if isinstance(names, str):
        return names
    for name in names or []:
        if not isinstance(name, dict):
            continue
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("prefix") or []), *(name.get("given") or []), name.get("family") or ""]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return None


def _first_identifier(resource: Mapping[str, Any], preferred: str) -> dict[str, Any] | None:
    identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    chosen = next((i for i in identifiers if i.get("system") == preferred), identifiers[0] if identifiers else None)
    return {"system": chosen.get("system"), "value": chosen["value"]} if chosen else None


def bundle_reference(value: Any, args: Mapping[str, Any], ctx: MappingContext) -> dict[str, Any] | None:
    """A reference to a Practitioner, PractitionerRole or Organization inside the GP
    bundle -> a logical R4 reference (type, SDS/ODS identifier, display). The façade does
    not serve those bundle-local resources, so a literal reference would dangle."""
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    target = ctx.resolve(ref) if isinstance(ref, str) else None
    if target is not None and target.get("resourceType") == "PractitionerRole":
        role = target
        practitioner_ref = (role.get("practitioner") or {}).get("reference")
        target = ctx.resolve(practitioner_ref) if isinstance(practitioner_ref, str) else None
    if target is None:
        if value.get("display"):
            return {"display": str(value["display"])}
        ctx.warn("A recorder, asserter or note author was not in the GP record and was left out")
        return None
    rtype = target.get("resourceType")
    if rtype not in ("Practitioner", "Organization", "Patient", "RelatedPerson"):
        ctx.warn(f"A reference to a {rtype} cannot be carried and was left out")
        return None
    out: dict[str, Any] = {"type": rtype}
    identifier = _first_identifier(target, ODS_SYSTEM if rtype == "Organization" else SDS_USER_ID_SYSTEM)
    if identifier:
        out["identifier"] = identifier
    display = _name_text(target)
    if display:
        out["display"] = display
    return out


def complex_extension(value: Any, args: Mapping[str, Any], ctx: MappingContext) -> list[dict[str, Any]] | None:
    """The STU3 complex extension `source_url` -> R4 `target_url`, renaming sub-extensions
    by `parts` (unlisted sub-extensions are not carried). Takes the whole extension list."""
    out: list[dict[str, Any]] = []
    parts: Mapping[str, str] = args["parts"]
    for ext in value if isinstance(value, list) else []:
        if not isinstance(ext, dict) or ext.get("url") != args["source_url"]:
            continue
        kept = [
            {**_copy.deepcopy(dict(p)), "url": parts[p["url"]]}
            for p in ext.get("extension") or []
            if isinstance(p, dict) and p.get("url") in parts
        ]
        if kept:
            out.append({"url": args["target_url"], "extension": kept})
    return out or None


TRANSFORMS: dict[str, Transform] = {
    "copy": copy,
    "date_time": date_time,
    "code_map": code_map,
    "code_to_codeable_concept": code_to_codeable_concept,
    "codeable_concept": codeable_concept,
    "patient_reference": patient_reference,
    "bundle_reference": bundle_reference,
    "complex_extension": complex_extension,
}
