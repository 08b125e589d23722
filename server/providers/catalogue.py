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


@dataclass(frozen=True)
class Upstreams:
    """Resolved base URL of each NHS API: the setting, or the embedded emulator's."""

    pds: str

    @classmethod
    def from_settings(cls, settings: Settings, emulator_url: str | None) -> "Upstreams":
        def pick(configured: str | None, path: str) -> str:
            if configured:
                return configured.rstrip("/")
            assert emulator_url, "an unset upstream needs the embedded emulator"
            return f"{emulator_url}/{path}"

        return cls(pds=pick(settings.pds_base_url, PDS_PATH))

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


DEFAULT_PROVIDERS: tuple[ProviderFactory, ...] = (
    patient_from_pds,
)
