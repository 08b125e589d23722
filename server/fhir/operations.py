"""What the system-level interactions and operations serve, derived from the registry.

Pure declarations shared by their handlers (server/fhir/everything.py, batch.py) and the
discovery documents (capability/operations.py), so the CapabilityStatement and OpenAPI
advertise exactly what the routes answer.
"""

from __future__ import annotations

from server.providers.registry import ProviderRegistry

EVERYTHING = "everything"
EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
# The audit trail is a record about access to the patient's record (IHE BALP), kept for
# auditors: never part of the record itself, even where it is searchable by patient.
NOT_THE_RECORD = frozenset({"AuditEvent"})


def everything_offered(registry: ProviderRegistry) -> bool:
    """Patient/{id}/$everything is served (and advertised) where Patient is."""
    return registry.find("Patient") is not None


def everything_types(registry: ProviderRegistry) -> tuple[str, ...]:
    """The types $everything gathers besides the Patient: the Patient compartment's types
    (a `patient` reference search parameter to Patient, ProviderRegistry.patient_compartment)
    less NOT_THE_RECORD; empty when Patient is not served."""
    if not everything_offered(registry):
        return ()
    return tuple(t for t in registry.patient_compartment() if t != "Patient" and t not in NOT_THE_RECORD)
