"""PDS as the core sees it: Patient, application-restricted by default, 5 requests/s."""

from __future__ import annotations

from server.nhs.auth.profiles import Access
from server.nhs.error_codes import CodeMeaning
from server.providers.base import ResourceProvider
from server.sources.base import Offer, Source
from server.sources.pds import emulator, emulator_data
from server.sources.pds.client import PDSClient
from server.sources.pds.provider import PatientFromPDS
from server.sources.pds.settings import PDSSettings
from server.sources.upstream import Upstream
from server.sources.wiring import Wiring

# NHS England: 5 requests/s per application, across every replica (nhs-apis.md).
PDS = Upstream(
    key="pds",
    api="PDS",
    emulator_path="personal-demographics/FHIR/R4",
    emulator_routes=lambda: emulator.ROUTES,
    rate_limit=5.0,
    error_codes={"TOO_MANY_MATCHES": CodeMeaning.TOO_MANY_MATCHES, "INVALIDATED_RESOURCE": CodeMeaning.GONE},
)


def pds_client(w: Wiring, access: Access) -> PDSClient:
    """A PDS client; the PAS tracer makes one too (application-restricted: it acts for no user)."""
    return PDSClient(w.client(PDS, access=access))


def patient_from_pds(w: Wiring) -> ResourceProvider:
    s = w.settings_of(PDSSettings)
    return PatientFromPDS(pds_client(w, s.pds_access), max_results=s.pds_max_results)


SOURCE = Source(
    name="Personal Demographics Service (FHIR R4)",
    settings=PDSSettings,
    upstreams=(PDS,),
    offers=(Offer("Patient", patient_from_pds, freshness=3600.0),),  # demographics change rarely
    scenarios=emulator_data.scenarios,
)
