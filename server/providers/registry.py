"""The provider registry: the single list of what the façade serves.

Routes, includes and the CapabilityStatement all read from here, so registering a
provider is the only step needed to serve and advertise a resource type.
"""

from __future__ import annotations

from collections.abc import Iterator

from server.fhir.errors import NotFound
from server.providers.base import ResourceProvider


class ProviderRegistry:
    def __init__(self) -> None:
        self._providers: dict[str, ResourceProvider] = {}

    def register(self, provider: ResourceProvider) -> None:
        if provider.resource_type in self._providers:
            raise ValueError(f"{provider.resource_type} is registered twice")
        self._providers[provider.resource_type] = provider

    def replace(self, provider: ResourceProvider) -> None:
        """Register or swap the provider of a type (composite providers wrap the one registered)."""
        self._providers[provider.resource_type] = provider

    def get(self, resource_type: str) -> ResourceProvider:
        provider = self._providers.get(resource_type)
        if provider is None:
            raise NotFound(f"Resource type '{resource_type}' is not served here")
        return provider

    def find(self, resource_type: str) -> ResourceProvider | None:
        return self._providers.get(resource_type)

    def __iter__(self) -> Iterator[ResourceProvider]:
        return iter(sorted(self._providers.values(), key=lambda p: p.resource_type))

    def __len__(self) -> int:
        return len(self._providers)
