"""The access decision: may this principal do this to this type, and see this resource?

Rules, all of which must hold (README "Access control" documents them):
1. Scope: a SMART scope grants the permission on the type (`r` read, `s` search, ...).
   When only `patient/` scopes grant it, the answer must stay in the token's patient
   compartment (its `patient` claim); a patient/ token without one sees nothing.
2. Role: the role table (roles.yaml) lets one of the caller's roles do it.
3. Purpose of use: clinical types need one of the table's clinical purposes.
4. Relationship: clinical resources need a legitimate relationship with their patient —
   registered in the PAS store of record, or the patient of the token's launch context —
   unless the purpose is break-glass (allowed, flagged in the audit).
Rules 1-3 are checked before any NHS API is called; 4 before, when the search names its
patients, and on every resource returned (matches, includes, revincludes, every page).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from server.access.compartment import patient_keys, searched_patients
from server.access.principal import Principal
from server.access.roles import RoleTable
from server.fhir.errors import FHIRError
from server.fhir.search_request import SearchRequest

PERMISSION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


class AccessDenied(FHIRError):
    """403: authenticated, but not allowed (RFC 6750 insufficient_scope)."""

    status = 403
    issue_code = "forbidden"

    def __init__(self, diagnostics: str) -> None:
        super().__init__(
            diagnostics, headers={"WWW-Authenticate": 'Bearer realm="nhs-fhir-facade", error="insufficient_scope"'}
        )


class PatientDirectory(Protocol):
    """What the façade knows of patients locally (the PAS store of record)."""

    async def registered(self, patient: str) -> bool:
        """Whether the patient (NHS number or pas-{hospital number}) is registered here."""

    async def nhs_number(self, patient: str) -> str | None:
        """The NHS number of a patient id (itself for an NHS number; the PAS record's for pas-)."""


@dataclass(frozen=True)
class Grant:
    """What one request may see of one type, once rules 1-3 passed."""

    resource_type: str
    compartment: str | None  # the NHS number everything must belong to (patient/ scopes)
    clinical: bool
    break_glass: bool


@dataclass
class Guard:
    """One request's access checks, with its relationship look-ups memoised."""

    policy: AccessPolicy
    principal: Principal
    _related: dict[str, bool] = field(default_factory=dict)
    _numbers: dict[str, str | None] = field(default_factory=dict)

    def grant(self, resource_type: str, permission: str) -> Grant:
        return self.policy.grant(self.principal, resource_type, permission)

    async def _nhs_number(self, patient: str) -> str | None:
        if patient not in self._numbers:
            self._numbers[patient] = await self.policy.directory.nhs_number(patient)
        return self._numbers[patient]

    async def _related_to(self, patient: str) -> bool:
        if patient not in self._related:
            number = await self._nhs_number(patient)
            self._related[patient] = (
                self.principal.patient is not None and number == self.principal.patient
            ) or await self.policy.directory.registered(patient)
        return self._related[patient]

    async def check_patient_id(self, grant: Grant, patient_id: str) -> None:
        """Before a Patient read reaches NHS: a patient-scoped token may read only its own."""
        if grant.compartment is not None and await self._nhs_number(patient_id) != grant.compartment:
            raise AccessDenied(f"Patient/{patient_id}: outside the token's patient compartment")

    async def check_search(self, grant: Grant, search: SearchRequest) -> None:
        """Before any NHS call: a compartment or relationship the search's own criteria break is a 403."""
        patients = searched_patients(search)
        if grant.compartment is not None:
            if not patients:
                raise AccessDenied(
                    f"A patient-scoped token must name its patient in a {search.resource_type} "
                    "search (patient=, or identifier= for Patient)"
                )
            for patient in patients:
                if not patient or await self._nhs_number(patient) != grant.compartment:
                    raise AccessDenied("This token's scopes are limited to its own patient")
        if grant.clinical and self.policy.relationship_required and not grant.break_glass and patients:
            for patient in patients:
                if patient and not await self._related_to(patient):
                    raise AccessDenied(self.policy.no_relationship_text)

    async def refusal(self, grant: Grant, resource: dict[str, Any]) -> str | None:
        """Why this resource must not be shown to this caller, or None."""
        keys = patient_keys(resource)  # every key must pass: a subject naming two patients shows neither
        if grant.compartment is not None:
            numbers = {await self._nhs_number(k) for k in keys}
            if numbers != {grant.compartment}:
                return "outside the token's patient compartment"
        if grant.clinical and self.policy.relationship_required and not grant.break_glass:
            if not keys:
                return "no patient to check a relationship with"
            for key in keys:
                if not await self._related_to(key):
                    return "no legitimate relationship with the patient"
        return None


class AccessPolicy:
    def __init__(self, table: RoleTable, directory: PatientDirectory, *, relationship_required: bool = True) -> None:
        self.table = table
        self.directory = directory
        self.relationship_required = relationship_required
        self.no_relationship_text = (
            "No legitimate relationship with this patient is recorded here (not registered in the PAS); "
            "for an emergency send X-Purpose-Of-Use: "
            + "/".join(sorted(table.break_glass_purposes))
            + " (break-glass, audited)"
        )

    def guard(self, principal: Principal) -> Guard:
        return Guard(self, principal)

    def grant(self, principal: Principal, resource_type: str, permission: str) -> Grant:
        """Rules 1-3, or AccessDenied naming the rule (never the data)."""
        action = f"{PERMISSION_NAMES.get(permission, permission)} {resource_type}"
        contexts = principal.scopes.contexts_granting(resource_type, permission)
        if not contexts:
            raise AccessDenied(f"The token's scopes do not allow {action}")
        compartment = None
        if contexts == {"patient"}:
            if principal.patient is None:
                raise AccessDenied("patient/ scopes need a patient context (the token's patient claim)")
            compartment = principal.patient
        if not self.table.fhir_allows(principal.roles, resource_type, permission):
            raise AccessDenied(
                f"None of the caller's roles ({', '.join(sorted(principal.roles)) or 'none'}) may {action}"
            )
        clinical = self.table.is_clinical(resource_type)
        if clinical and principal.purpose not in self.table.clinical_purposes:
            raise AccessDenied(
                f"{resource_type} needs a purpose of use ("
                f"{', '.join(sorted(self.table.clinical_purposes))}) in the token's "
                "purpose_of_use claim or the X-Purpose-Of-Use header"
            )
        return Grant(
            resource_type, compartment, clinical, break_glass=principal.purpose in self.table.break_glass_purposes
        )

    def require_pas(self, principal: Principal, action: str, resource_type: str, permissions: str) -> None:
        """The legacy PAS endpoints: a role allowed `action`, and a scope granting one of
        `permissions` on the FHIR type the endpoint stands for."""
        if not self.table.pas_allows(principal.roles, action):
            raise AccessDenied(f"None of the caller's roles may use the PAS endpoint ({action})")
        if not any(principal.scopes.contexts_granting(resource_type, p) - {"patient"} for p in permissions):
            raise AccessDenied(
                f"The token's scopes do not allow {action} (needs user/ or system/ {resource_type}.{permissions})"
            )
        if action == "related.read" and principal.purpose not in self.table.clinical_purposes:
            raise AccessDenied(
                f"{action} returns clinical records: it needs a purpose of use ("
                f"{', '.join(sorted(self.table.clinical_purposes))}) in the token or X-Purpose-Of-Use"
            )
