"""Sources for tests: a provider factory wrapped as an NHS source with no upstream."""

from __future__ import annotations

from collections.abc import Callable

from server.providers.base import ResourceProvider
from server.settings import Settings
from server.sources.base import Offer, Source
from server.sources.config import SourceConfig
from server.sources.registry import SOURCES
from server.sources.upstream import SourceSettings
from server.sources.wiring import Wiring


def source_of(resource_type: str, build: Callable[[Wiring], ResourceProvider]) -> Source:
    """A source serving `resource_type` from `build`, calling no NHS API."""
    return Source(
        name=f"test {resource_type}", settings=SourceSettings, upstreams=(), offers=(Offer(resource_type, build),)
    )


def nhs_urls(settings: Settings) -> list[str | None]:
    """Every NHS API URL `settings` configures for the default sources (None = emulator)."""
    return SourceConfig.resolve(settings, SOURCES).configured_urls()
