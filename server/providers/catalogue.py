"""Which providers the façade serves, and how each is built from the shared wiring.

Adding a resource type or NHS API: write the provider module, add one factory line to
DEFAULT_PROVIDERS. Routes and the CapabilityStatement follow from the registry.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from server.nhs.auth.profiles import Access, AuthProfiles
from server.nhs.client import ClientConfig, NHSClient
from server.nhs.pds import PDSClient
from server.nhs.resilience import Resilience, resilience_for
from server.nhs.resilient_client import ResilientClient
from server.providers.base import ResourceProvider
from server.settings import Settings

PDS_PATH = "personal-demographics/FHIR/R4"
BARS_PATH = "booking-and-referral/FHIR/R4"
ERS_PATH = "referrals/FHIR"
CPT_PATH = "clinical-prescription-tracker"
GPCONNECT_PATH = "gpconnect/Y12345/STU3/1/gpconnect/structured/fhir"


@dataclass(frozen=True)
class Upstreams:
    """Resolved base URL of each NHS API: the setting, or the embedded emulator's."""

    pds: str
    bars: str
    ers: str
    cpt: str
    gpconnect: str

    @classmethod
    def from_settings(cls, settings: Settings, emulator_url: str | None) -> Upstreams:
        def pick(configured: str | None, path: str) -> str:
            if configured:
                return configured.rstrip("/")
            assert emulator_url, "an unset upstream needs the embedded emulator"
            return f"{emulator_url}/{path}"

        return cls(
            pds=pick(settings.pds_base_url, PDS_PATH),
            bars=pick(settings.bars_base_url, BARS_PATH),
            ers=pick(settings.ers_base_url, ERS_PATH),
            cpt=pick(settings.cpt_base_url, CPT_PATH),
            gpconnect=pick(settings.gpconnect_base_url, GPCONNECT_PATH),
        )

    def modes(self, emulator_url: str | None) -> dict[str, str]:
        """Per API: "emulator" (embedded) or "configured"; for the health endpoint, no URLs."""
        return {name: "emulator" if emulator_url and str(url).startswith(emulator_url) else "configured"
                for name, url in vars(self).items()}


@dataclass(frozen=True)
class Wiring:
    """Everything a provider factory may use; built once in the app lifespan."""

    settings: Settings
    session: aiohttp.ClientSession
    upstreams: Upstreams
    auth: AuthProfiles = field(default_factory=AuthProfiles.none)
    guards: dict[str, Resilience] = field(default_factory=dict, compare=False)
    # (api, access) of every client made, in order: the composition root reads which APIs
    # each provider factory wired, and how, so the CapabilityStatement's security section and
    # the SMART document say which types need the caller's token without a hand-kept list.
    accesses: list[tuple[str, Access]] = field(default_factory=list, compare=False)

    def client(self, api: str, base_url: str, access: Access = "application") -> NHSClient:
        """An NHSClient for `api`; `access` picks application- or user-restricted auth."""
        self.accesses.append((api, access))
        s = self.settings
        return ResilientClient(self.session, ClientConfig(
            api=api, base_url=base_url, connect_timeout=s.upstream_connect_timeout,
            read_timeout=s.upstream_read_timeout, end_user_ods=s.end_user_ods,
        ), self.resilience(api), auth=self.auth.for_api(api, access))

    async def aclose(self) -> None:
        """Stop what the clients run in the background (shared upstream flights)."""
        for guard in self.guards.values():
            if guard.flights is not None:
                await guard.flights.aclose()

    def resilience(self, api: str) -> Resilience:
        """One breaker, rate limit and concurrency limit per NHS API, shared by all its clients."""
        if api not in self.guards:
            self.guards[api] = resilience_for(api, self.settings)
        return self.guards[api]


ProviderFactory = Callable[[Wiring], ResourceProvider]


def patient_from_pds(w: Wiring) -> ResourceProvider:
    from server.providers.patient_pds import PatientFromPDS

    pds = PDSClient(w.client("PDS", w.upstreams.pds, access=w.settings.pds_access))
    return PatientFromPDS(pds, max_results=w.settings.pds_max_results)


def service_request_from_referrals(w: Wiring) -> ResourceProvider:
    """BaRS (application-restricted) and e-RS, whose user-restricted calls act for the caller
    unless e-RS is configured application-restricted (STU3 A005 acts for no user)."""
    from capability.statement import software_version
    from server.nhs.bars import BaRSClient, BarsHeaderConfig
    from server.nhs.ers import ERSClient, ERSContextConfig
    from server.providers.service_request import ServiceRequestFromReferrals

    s = w.settings
    app_restricted = s.ers_access_mode == "application-restricted"
    ers = w.client("e-RS", w.upstreams.ers, access="application" if app_restricted else "user")
    bars = BaRSClient(w.client("BaRS", w.upstreams.bars), BarsHeaderConfig(
        accept_version=s.bars_accept_version, end_user_ods=s.bars_end_user_ods or s.end_user_ods,
        software_version=software_version()))
    return ServiceRequestFromReferrals(
        bars, ERSClient(ers, ERSContextConfig(business_function=s.ers_business_function, end_user_ods=s.end_user_ods)),
        s.bars_targets, ers_app_restricted=app_restricted)


def medication_request_from_cpt(w: Wiring) -> ResourceProvider:
    from server.nhs.cpt import CPTClient
    from server.providers.medication_request_cpt import MedicationRequestFromCPT

    # CPT is CIS2 user-restricted: the auth layer passes the caller's token through (or exchanges it).
    client = CPTClient(w.client("CPT", w.upstreams.cpt, access="user"),
                       detail_concurrency=w.settings.cpt_detail_concurrency)
    return MedicationRequestFromCPT(client)


def allergy_intolerance_from_gpconnect(w: Wiring) -> ResourceProvider:
    from server.nhs.gpconnect import GPConnectClient, gpconnect_config
    from server.providers.allergy_intolerance_gpc import AllergyIntoleranceFromGPConnect

    # Through the Clinical Data Gateway GP Connect is user-restricted (the caller's CIS2
    # token); through SSP the façade sends its own consumer JWT.
    access: Access = "user" if w.settings.gpconnect_auth_mode == "gateway" else "application"
    client = w.client("GP Connect", w.upstreams.gpconnect, access=access)
    return AllergyIntoleranceFromGPConnect(GPConnectClient(client, gpconnect_config(w.settings)))


DEFAULT_PROVIDERS: tuple[ProviderFactory, ...] = (
    patient_from_pds,
    service_request_from_referrals,
    medication_request_from_cpt,
    allergy_intolerance_from_gpconnect,
)
