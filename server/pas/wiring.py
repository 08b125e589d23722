"""Build the PAS side from the app's wiring: store, mappings, service, HL7 intake, and the
composite providers that put PAS records on the FHIR side. Called once, in the lifespan."""
from __future__ import annotations

from mappings.spec import load_profile
from server.nhs.pds import PDSClient
from server.pas.hl7_intake import HL7Intake
from server.pas.records import PASMappings
from server.pas.routes import PASRuntime
from server.pas.service import PASService
from server.pas.store import InMemoryPASStore, PASStore
from server.providers.catalogue import Wiring
from server.providers.pas_clinical import ClinicalWithPAS
from server.providers.patient_pas import PatientWithPAS
from server.providers.registry import ProviderRegistry


def build_pas(wiring: Wiring, registry: ProviderRegistry, base_url: str, store: PASStore | None = None) -> PASRuntime:
    """The PAS runtime; wraps the registered Patient, AllergyIntolerance and
    MedicationRequest providers so PAS records appear on the FHIR side too."""
    settings = wiring.settings
    mappings = PASMappings(load_profile(settings.pas_profile))
    service = PASService(
        mappings=mappings,
        # Store of record, never a cache: no TTL. A MongoDB PASStore plugs in here.
        store=store or InMemoryPASStore(),
        registry=registry,
        pds=PDSClient(wiring.client("PDS", wiring.upstreams.pds)),
        fuzzy_min_score=settings.pas_trace_fuzzy_min_score,
        pds_max_results=settings.pds_max_results,
    )
    registry.replace(PatientWithPAS(registry.find("Patient"), service))
    for resource_type in ("AllergyIntolerance", "MedicationRequest"):
        registry.replace(ClinicalWithPAS(resource_type, registry.find(resource_type), service))
    return PASRuntime(service=service, intake=HL7Intake(service, load_profile(settings.pas_hl7_profile)),
                      base_url=base_url)
