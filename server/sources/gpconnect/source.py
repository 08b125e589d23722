"""GP Connect as the core sees it: AllergyIntolerance from the GP's structured record."""

from __future__ import annotations

from server.nhs.auth.profiles import Access
from server.nhs.error_codes import CodeMeaning
from server.providers.base import ResourceProvider
from server.sources.base import Offer, Source
from server.sources.gpconnect import emulator, emulator_data
from server.sources.gpconnect.client import GPConnectClient, gpconnect_config
from server.sources.gpconnect.provider import AllergyIntoleranceFromGPConnect
from server.sources.gpconnect.settings import GPConnectSettings
from server.sources.upstream import Upstream
from server.sources.wiring import Wiring

GPCONNECT = Upstream(
    key="gpconnect",
    api="GP Connect",
    emulator_path="gpconnect/Y12345/STU3/1/gpconnect/structured/fhir",
    emulator_routes=lambda: emulator.ROUTES,
    # The patient, not our credentials, is the reason for the refusal (a 403).
    error_codes={"NO_PATIENT_CONSENT": CodeMeaning.NO_CONSENT},
)


def allergy_intolerance_from_gpconnect(w: Wiring) -> ResourceProvider:
    # Through the Clinical Data Gateway GP Connect is user-restricted (the caller's CIS2
    # token); through SSP the façade sends its own consumer JWT.
    s = w.settings_of(GPConnectSettings)
    access: Access = "user" if s.gpconnect_auth_mode == "gateway" else "application"
    client = w.client(GPCONNECT, access=access)
    return AllergyIntoleranceFromGPConnect(GPConnectClient(client, gpconnect_config(s, w.settings.public_base_url())))


SOURCE = Source(
    name="GP Connect Access Record: Structured",
    settings=GPConnectSettings,
    upstreams=(GPCONNECT,),
    offers=(Offer("AllergyIntolerance", allergy_intolerance_from_gpconnect, freshness=900.0),),
    scenarios=emulator_data.scenarios,
)
