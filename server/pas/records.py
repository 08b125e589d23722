"""PAS patient documents <-> FHIR resources, through the loaded mapping profile. Pure.

A PAS patient document is the profile's Patient record plus two optional lists of
PAS-recorded clinical records, `allergies` and `medications`, each in the profile's
AllergyIntolerance / MedicationRequest record format (the patient is implied by the
enclosing document). Everything is validated together so one answer lists every
problem, with list items named `allergies[0].severity`.

FHIR ids: a PAS patient is `pas-{hospitalNumber}`; its PAS-recorded allergies and
medications are `pas-{hospitalNumber}-{allergyId|prescriptionId}`. `meta.source`
says the record came from this PAS profile.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from mappings.engine import MappingFailed, Problem, to_fhir, to_pas
from mappings.spec import Profile, RecordMapping
from server.pas.store import PASRecord, PatientData, StoredPatient

PAS_ID_PREFIX = "pas-"
LISTS = {"allergies": ("AllergyIntolerance", "allergyId"), "medications": ("MedicationRequest", "prescriptionId")}
SUBJECT_ELEMENT = {"AllergyIntolerance": "patient", "MedicationRequest": "subject", "ServiceRequest": "subject"}


@dataclass(frozen=True)
class PASMappings:
    """The loaded PAS profile and what the façade derives from it."""

    profile: Profile

    def record(self, resource_type: str) -> RecordMapping:
        return self.profile.record(resource_type)

    @property
    def hospital_number_system(self) -> str:
        return self.profile.constants["HOSPITAL_NUMBER"]

    @property
    def source_uri(self) -> str:
        """meta.source of every PAS-originated resource."""
        return f"urn:nhs-fhir-facade:pas:{self.profile.name}"


def patient_id(hospital_number: str) -> str:
    return f"{PAS_ID_PREFIX}{hospital_number}"


def hospital_number_of(resource_id: str) -> str | None:
    """The hospital number inside a `pas-` id, or None for any other id."""
    if resource_id.startswith(PAS_ID_PREFIX) and len(resource_id) > len(PAS_ID_PREFIX):
        return resource_id[len(PAS_ID_PREFIX) :]
    return None


def _prefixed(prefix: str, problems: list[Problem]) -> list[Problem]:
    return [Problem(f"{prefix}.{p.path}" if p.path else prefix, p.value, p.reason) for p in problems]


def canonical(mapping: RecordMapping, record: Any) -> PASRecord:
    """Validate a PAS record and return it in canonical form (as it will be stored)."""
    resource = to_fhir(mapping, record)
    back, problems = to_pas(mapping, resource)
    assert not problems, problems  # forward output always maps back; a failure is a spec bug
    return back


def parse_document(mappings: PASMappings, body: Any) -> PatientData:
    """A PAS patient document, validated whole; raises MappingFailed listing every problem."""
    if not isinstance(body, dict):
        raise MappingFailed([Problem("", body, "expected a JSON object")])
    problems: list[Problem] = []
    patient_fields = {k: v for k, v in body.items() if k not in LISTS}
    record: PASRecord = {}
    try:
        record = canonical(mappings.record("Patient"), patient_fields)
    except MappingFailed as failed:
        problems.extend(failed.problems)
    lists: dict[str, list[PASRecord]] = {}
    for name, (resource_type, key) in LISTS.items():
        items = body.get(name)
        lists[name] = []
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(Problem(name, items, "expected a list"))
            continue
        seen: set[Any] = set()  # canonical key values, whatever type the mapping gives them
        for i, item in enumerate(items):
            try:
                lists[name].append(canonical(mappings.record(resource_type), item))
            except MappingFailed as failed:
                problems.extend(_prefixed(f"{name}[{i}]", failed.problems))
                continue
            ident = lists[name][-1].get(key)
            if ident in seen:
                problems.append(Problem(f"{name}[{i}].{key}", ident, "used twice in this patient"))
            seen.add(ident)
    if problems:
        raise MappingFailed(problems)
    return PatientData(record, tuple(lists["allergies"]), tuple(lists["medications"]))


def document(stored: StoredPatient, record: PASRecord | None = None) -> PASRecord:
    """The PAS document for a stored patient (optionally with a refreshed patient record)."""
    out = copy.deepcopy(record if record is not None else stored.record)
    if stored.allergies:
        out["allergies"] = copy.deepcopy(list(stored.allergies))
    if stored.medications:
        out["medications"] = copy.deepcopy(list(stored.medications))
    return out


def patient_resource(mappings: PASMappings, record: PASRecord) -> dict[str, Any]:
    """The FHIR Patient of a stored (canonical) PAS record."""
    resource = to_fhir(mappings.record("Patient"), record)
    resource["id"] = patient_id(record["hospitalNumber"])
    resource["meta"] = {**resource.get("meta", {}), "source": mappings.source_uri}
    return resource


def clinical_resource(
    mappings: PASMappings, resource_type: str, hospital_number: str, record: PASRecord
) -> dict[str, Any]:
    """A PAS-recorded allergy or medication as FHIR, pointing at the PAS patient."""
    key = next(k for t, k in LISTS.values() if t == resource_type)
    resource = to_fhir(mappings.record(resource_type), record)
    resource["id"] = f"{patient_id(hospital_number)}-{record[key]}"
    resource["meta"] = {**resource.get("meta", {}), "source": mappings.source_uri}
    resource[SUBJECT_ELEMENT[resource_type]] = {"reference": f"Patient/{patient_id(hospital_number)}"}
    return resource


def clinical_resources(mappings: PASMappings, resource_type: str, stored: StoredPatient) -> list[dict[str, Any]]:
    records = stored.allergies if resource_type == "AllergyIntolerance" else stored.medications
    if resource_type not in ("AllergyIntolerance", "MedicationRequest"):
        return []
    return [clinical_resource(mappings, resource_type, stored.hospital_number, r) for r in records]


def audit_references(hospital_number: str, nhs_number: str | None) -> tuple[list[str], list[str]]:
    """(patients, resources) a PAS access names in its AuditEvent: the patient by NHS number
    when known, so `AuditEvent?patient=Patient/{NHS number}` finds PAS accesses too, and the
    PAS record itself."""
    record = f"Patient/{PAS_ID_PREFIX}{hospital_number}"
    return [f"Patient/{nhs_number}" if nhs_number else record], [record]
