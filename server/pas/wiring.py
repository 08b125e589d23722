"""Build the PAS side from the app's wiring: store, mappings, service, HL7 intake, and the
composite providers that put PAS records on the FHIR side. Called once, in the lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from pymongo import AsyncMongoClient

from mappings.spec import load_profile
from server.access.control import AccessControl
from server.mongodb import Document
from server.pas.hl7_intake import HL7Intake
from server.pas.hl7_ledger import COLLECTION as LEDGER_COLLECTION
from server.pas.hl7_ledger import DeliveryLedger, MemoryLedger, MongoLedger, NoLedger
from server.pas.hl7_senders import SenderAllowList
from server.pas.mllp import MLLPConfig, MLLPListener, tls_context
from server.pas.mongo_store import MongoPASStore, pas_collection
from server.pas.records import PASMappings
from server.pas.routes import PASRuntime
from server.pas.service import PASService
from server.pas.store import InMemoryPASStore, PASStore
from server.providers.base import ResourceProvider
from server.providers.pas_clinical import ClinicalWithPAS
from server.providers.patient_pas import PatientWithPAS
from server.providers.registry import ProviderRegistry
from server.request_trace import Trace
from server.settings import Settings
from server.sources.pds.settings import PDSSettings
from server.sources.pds.source import pds_client
from server.sources.wiring import Wiring

log = logging.getLogger("facade.pas")


@contextlib.asynccontextmanager
async def open_pas_store(settings: Settings, client: AsyncMongoClient[Document] | None) -> AsyncIterator[PASStore]:
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


# The types PAS records add to: Patient (demographics) and the clinical types the PAS
# profile maps (allergies, medication).
PAS_CLINICAL_TYPES = ("AllergyIntolerance", "MedicationRequest")


def build_pas(wiring: Wiring, registry: ProviderRegistry, base_url: str, store: PASStore | None = None) -> PASRuntime:
    """The PAS runtime. Its service finds the NHS providers in `registry` at request time,
    so it is built before they are registered (with_pas wraps them as they are)."""
    settings = wiring.settings
    mappings = PASMappings(load_profile(settings.pas_profile))
    service = PASService(
        mappings=mappings,
        # Store of record, never a cache: no TTL (see open_pas_store).
        store=store or InMemoryPASStore(),
        registry=registry,
        pds=pds_client(wiring, "application"),  # tracing acts for no user
        fuzzy_min_score=settings.pas_trace_fuzzy_min_score,
        pds_max_results=wiring.settings_of(PDSSettings).pds_max_results,
    )
    senders = SenderAllowList.from_entries(settings.pas_hl7_senders(list(wiring.nhs_urls)))
    if not senders.senders:
        log.warning("pas hl7: no sender is allowed (FACADE_PAS_HL7_ALLOWED_SENDERS): every message gets AR")
    intake = HL7Intake(service, load_profile(settings.pas_hl7_profile), senders)
    return PASRuntime(service=service, intake=intake, base_url=base_url)


def with_pas(provider: ResourceProvider, service: PASService) -> ResourceProvider:
    """`provider` with the PAS records of its type added (a store of record: the composite
    goes outside the cache, so PAS records are never cached), or as it is."""
    if provider.resource_type == "Patient":
        return PatientWithPAS(provider, service)
    if provider.resource_type in PAS_CLINICAL_TYPES:
        return ClinicalWithPAS(provider.resource_type, provider, service)
    return provider


def pas_only_providers(registry: ProviderRegistry, service: PASService) -> list[ResourceProvider]:
    """Providers for the PAS types no registered source serves: PAS records alone."""
    alone: list[ResourceProvider] = [PatientWithPAS(None, service)] if registry.find("Patient") is None else []
    return alone + [ClinicalWithPAS(t, None, service) for t in PAS_CLINICAL_TYPES if registry.find(t) is None]


@contextlib.asynccontextmanager
async def open_mllp(
    settings: Settings,
    client: AsyncMongoClient[Document] | None,
    pas: PASRuntime,
    access: Callable[[], AccessControl],
    keep_trace: Callable[[Trace], None] | None = None,
    redact_traces: bool = False,
) -> AsyncIterator[MLLPListener | None]:
    """The MLLP listener when FACADE_MLLP_PORT is set (server/pas/mllp.py), else None. Its
    delivery ledger is in MongoDB when the façade has it (shared by every worker), else in
    this process; FACADE_MLLP_DEDUP_SECONDS=0 turns it off. `keep_trace`: where each
    message's trace is filed (the console's, when it is on)."""
    if settings.mllp_port is None:
        yield None
        return
    seconds = settings.mllp_dedup_seconds
    ledger: DeliveryLedger
    if seconds == 0:
        ledger = NoLedger()
    elif client is not None:
        ledger = MongoLedger(client[settings.mongodb_database][LEDGER_COLLECTION], seconds)
    else:
        ledger = MemoryLedger(seconds)
    config = MLLPConfig(
        host=settings.mllp_host or settings.host,
        port=settings.mllp_port,
        max_message_bytes=settings.mllp_max_message_bytes,
        idle_seconds=settings.mllp_idle_seconds,
        max_connections=settings.mllp_max_connections,
        tls=tls_context(settings.mllp_tls_cert, settings.mllp_tls_key, settings.mllp_tls_client_ca),
    )
    listener = MLLPListener(config, lambda: pas.intake, access, ledger, pas.base_url, keep_trace, redact_traces)
    async with listener:
        yield listener
