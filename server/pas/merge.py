"""PAS copy + current PDS record -> the one Patient the façade shows. Pure.

- PDS wins for everything it holds (names, gender, birth and death, address, telecom,
  registered GP, the NHS number and its verification status): it is the national
  master and the PAS copy may be stale.
- PAS-only data stays: the hospital number, ethnicity and any other element PDS does not
  hold.
- Restricted patients (meta.security R or V, see shared/reference/nhs-apis.md 1.6):
  whatever PDS withholds is not back-filled from the PAS copy. R withholds address,
  telecom, contact, registered GP and the pharmacy/birth-place extensions; V also
  withholds name and birth date. The PDS security label is kept on the result.
"""

from __future__ import annotations

import copy
from typing import Any

from server.nhs.nhs_number import NHS_NUMBER_SYSTEM

Resource = dict[str, Any]

PDS_OWNED = (
    "name",
    "gender",
    "birthDate",
    "deceasedDateTime",
    "deceasedBoolean",
    "address",
    "telecom",
    "generalPractitioner",
    "contact",
    "multipleBirthBoolean",
    "multipleBirthInteger",
)
WITHHELD = {
    "R": ("address", "telecom", "contact", "generalPractitioner"),
    "V": ("address", "telecom", "contact", "generalPractitioner", "name", "birthDate"),
}
WITHHELD_EXTENSIONS = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy",
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-BirthPlace",
)
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CONFIDENTIALITY_DISPLAY = {"U": "unrestricted", "R": "restricted", "V": "very restricted"}


def security_code(patient: Resource) -> str | None:
    for label in (patient.get("meta") or {}).get("security") or []:
        if isinstance(label, dict) and label.get("system") == CONFIDENTIALITY:
            return label.get("code")
    return None


def labelled(patient: Resource, code: str | None) -> Resource:
    """The patient with `code` as its confidentiality label, as PDS writes one (None: no
    label); other security labels are kept."""
    out = copy.deepcopy(patient)
    meta = dict(out.get("meta") or {})
    others = [s for s in meta.get("security") or [] if not (isinstance(s, dict) and s.get("system") == CONFIDENTIALITY)]
    label = (
        [{"system": CONFIDENTIALITY, "code": code, "display": CONFIDENTIALITY_DISPLAY.get(code, code)}] if code else []
    )
    if label or others:
        meta["security"] = label + others
    else:
        meta.pop("security", None)
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def withhold(patient: Resource, code: str | None) -> Resource:
    """Drop what a restricted record must not show (used when PDS cannot be asked too)."""
    out = copy.deepcopy(patient)
    for key in WITHHELD.get(code or "", ()):
        out.pop(key, None)
    if code in WITHHELD:
        kept = [e for e in out.get("extension") or [] if e.get("url") not in WITHHELD_EXTENSIONS]
        if kept:
            out["extension"] = kept
        else:
            out.pop("extension", None)
    return out


def merge_with_pds(pas: Resource, pds: Resource) -> Resource:
    """The PAS patient refreshed with PDS demographics (see the module docstring)."""
    merged = copy.deepcopy(pas)
    for key in PDS_OWNED:
        if key in pds:
            merged[key] = copy.deepcopy(pds[key])
    pds_ids = [i for i in pds.get("identifier") or [] if i.get("system") == NHS_NUMBER_SYSTEM]
    others = [i for i in merged.get("identifier") or [] if i.get("system") != NHS_NUMBER_SYSTEM]
    pas_nhs = [i for i in merged.get("identifier") or [] if i.get("system") == NHS_NUMBER_SYSTEM]
    merged["identifier"] = others + (copy.deepcopy(pds_ids) or pas_nhs)
    pds_extensions = [e for e in pds.get("extension") or [] if isinstance(e, dict)]
    pds_urls = {e.get("url") for e in pds_extensions}
    extensions = [e for e in merged.get("extension") or [] if e.get("url") not in pds_urls] + pds_extensions
    if extensions:
        merged["extension"] = copy.deepcopy(extensions)
    code = security_code(pds)
    meta = dict(merged.get("meta") or {})
    if code is not None:
        meta["security"] = copy.deepcopy((pds.get("meta") or {}).get("security"))
    if meta:
        merged["meta"] = meta
    return withhold(merged, code)
