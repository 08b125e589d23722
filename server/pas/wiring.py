"""Build the PAS side from the app's wiring: store, mappings, service, HL7 intake, and the
composite providers that put PAS records on the FHIR side. Called once, in the lifespan."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from pymongo import AsyncMongoClient

from mappings.spec import load_profile
from server.nhs.pds import PDSClient
from server.pas.hl7_intake import HL7Intake
from server.pas.hl7_senders import SenderAllowList
from server.pas.mongo_store import MongoPASStore, pas_collection
from server.pas.records import PASMappings
from server.pas.routes import PASRuntime
from server.pas.service import PASService
from server.pas.store import InMemoryPASStore, PASStore
from server.providers.catalogue import Wiring
from server.providers.pas_clinical import ClinicalWithPAS
from server.providers.patient_pas import PatientWithPAS
from server.providers.registry import ProviderRegistry
from server.settings import Settings

log = logging.getLogger("facade.pas")


@contextlib.asynccontextmanager
async def open_pas_store(settings: Settings, client: AsyncMongoClient | None) -> AsyncIterator[PASStore]:
    """MongoDB (collection pas_patients in FACADE_MONGODB_DATABASE, on the shared client,
    written with w: majority, j: true) when one is configured, else in memory. Either way
    a store of record: no expiry."""
    if client is None:
        log.info("pas store: in memory (records are lost when the process stops)")
        store: PASStore = InMemoryPASStore()
    else:
        mongo = MongoPASStore(pas_collection(client[settings.mongodb_database]))
        await mongo.start()
        log.info("pas store: MongoDB, database %s", settings.mongodb_database)
        store = mongo
    try:
        yield store
    finally:
        await store.close()


def build_pas(wiring: Wiring, registry: ProviderRegistry, base_url: str, store: PASStore | None = None) -> PASRuntime:
    """The PAS runtime; wraps the registered Patient, AllergyIntolerance and
    MedicationRequest providers so PAS records appear on the FHIR side too."""
    settings = wiring.settings
    mappings = PASMappings(load_profile(settings.pas_profile))
    service = PASService(
        mappings=mappings,
        # Store of record, never a cache: no TTL (see open_pas_store).
        store=store or InMemoryPASStore(),
        registry=registry,
        pds=PDSClient(wiring.client("PDS", wiring.upstreams.pds)),
        fuzzy_min_score=settings.pas_trace_fuzzy_min_score,
        pds_max_results=settings.pds_max_results,
    )
    registry.replace(PatientWithPAS(registry.find("Patient"), service))
    for resource_type in ("AllergyIntolerance", "MedicationRequest"):
        registry.replace(ClinicalWithPAS(resource_type, registry.find(resource_type), service))
    senders = SenderAllowList.from_entries(settings.pas_hl7_senders)
    if not senders.senders:
        log.warning("pas hl7: no sender is allowed (FACADE_PAS_HL7_ALLOWED_SENDERS): every message gets AR")
    intake = HL7Intake(service, load_profile(settings.pas_hl7_profile), senders)
    return PASRuntime(service=service, intake=intake, base_url=base_url)
