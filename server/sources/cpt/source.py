"""The Clinical Prescription Tracker as the core sees it: MedicationRequest, CIS2 user-restricted."""

from __future__ import annotations

from server.providers.base import ResourceProvider
from server.sources.base import Offer, Source
from server.sources.cpt import emulator, emulator_data
from server.sources.cpt.client import CPTClient
from server.sources.cpt.provider import MedicationRequestFromCPT
from server.sources.cpt.settings import CPTSettings
from server.sources.upstream import Upstream
from server.sources.wiring import Wiring

CPT = Upstream(
    key="cpt", api="CPT", emulator_path="clinical-prescription-tracker", emulator_routes=lambda: emulator.ROUTES
)


def medication_request_from_cpt(w: Wiring) -> ResourceProvider:
    # CPT is CIS2 user-restricted: the auth layer passes the caller's token through (or exchanges it).
    return MedicationRequestFromCPT(
        CPTClient(w.client(CPT, access="user")),
        detail_concurrency=w.settings_of(CPTSettings).cpt_detail_concurrency,
    )


SOURCE = Source(
    name="Clinical Prescription Tracker",
    settings=CPTSettings,
    upstreams=(CPT,),
    offers=(Offer("MedicationRequest", medication_request_from_cpt, freshness=300.0),),  # prescriptions change daily
    scenarios=emulator_data.scenarios,
)
