"""Which providers the façade serves, and how each is built from the shared wiring.

Adding a resource type or NHS API: write the provider module, add one factory line to
DEFAULT_PROVIDERS. Routes and the CapabilityStatement follow from the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import aiohttp

from server.nhs.client import ClientConfig, NHSClient
from server.nhs.pds import PDSClient
from server.providers.base import ResourceProvider
from server.settings import Settings

PDS_PATH = "personal-demographics/FHIR/R4"
CPT_PATH = "clinical-prescription-tracker"


@dataclass(frozen=True)
class Upstreams:
    """Resolved base URL of each NHS API: the setting, or the embedded emulator's."""

    pds: str
    cpt: str

    @classmethod
    def from_settings(cls, settings: Settings, emulator_url: str | None) -> "Upstreams":
        def pick(configured: str | None, path: str) -> str:
            if configured:
                return configured.rstrip("/")
            assert emulator_url, "an unset upstream needs the embedded emulator"
            return f"{emulator_url}/{path}"

        return cls(
            pds=pick(settings.pds_base_url, PDS_PATH),
            cpt=pick(settings.cpt_base_url, CPT_PATH),
        )


@dataclass(frozen=True)
class Wiring:
    """Everything a provider factory may use; built once in the app lifespan."""

    settings: Settings
    session: aiohttp.ClientSession
    upstreams: Upstreams

    def client(self, api: str, base_url: str) -> NHSClient:
        s = self.settings
        return NHSClient(self.session, ClientConfig(
            api=api, base_url=base_url, connect_timeout=s.upstream_connect_timeout,
            read_timeout=s.upstream_read_timeout, end_user_ods=s.end_user_ods,
        ))


ProviderFactory = Callable[[Wiring], ResourceProvider]


def patient_from_pds(w: Wiring) -> ResourceProvider:
    from server.providers.patient_pds import PatientFromPDS

    return PatientFromPDS(PDSClient(w.client("PDS", w.upstreams.pds)), max_results=w.settings.pds_max_results)


def medication_request_from_cpt(w: Wiring) -> ResourceProvider:
    from server.nhs.cpt import CallerBearer, CPTClient
    from server.providers.medication_request_cpt import MedicationRequestFromCPT

    # CPT is CIS2 user-restricted: CallerBearer passes the caller's token (swap for the auth layer's).
    client = CPTClient(w.client("CPT", w.upstreams.cpt), auth=CallerBearer(),
                       detail_concurrency=w.settings.cpt_detail_concurrency)
    return MedicationRequestFromCPT(client)


DEFAULT_PROVIDERS: tuple[ProviderFactory, ...] = (
    patient_from_pds,
    medication_request_from_cpt,
)
