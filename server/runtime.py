"""What handlers need at request time, built once by the composition root (server.app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.cache.store import CacheStore
from server.fhir.pages import Snapshots
from server.providers.registry import ProviderRegistry
from server.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    base_url: str
    registry: ProviderRegistry
    snapshots: Snapshots  # in process, or in MongoDB when configured (server.page_snapshots)
    cache: CacheStore | None = None  # for the health endpoint; None = cache disabled
    upstream_modes: dict[str, str] = field(default_factory=dict)  # upstream key -> "emulator" | "configured"
    # Every NHS API URL as configured (None = the embedded emulator): the CapabilityStatement
    # and SMART document publish the development issuer only where wiring trusts it.
    nhs_urls: tuple[str | None, ...] = ()
    # Resource type -> (NHS API, "application" | "user") its provider's clients were built with.
    upstream_access: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
