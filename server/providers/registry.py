"""The provider registry: the single list of what the façade serves.

Routes, includes and the CapabilityStatement all read from here, so registering a
provider is the only step needed to serve and advertise a resource type.
"""

from __future__ import annotations

from collections.abc import Iterator

from server.fhir.errors import NotFound
from server.providers.base import ResourceProvider

# CompartmentDefinition/patient: the types served in it are those searched by this
# reference parameter to a Patient (MedicationRequest, ServiceRequest, AllergyIntolerance,
# AuditEvent where registered); GET Patient/{id}/{type} is {type}?patient={id}.
PATIENT_COMPARTMENT = "http://hl7.org/fhir/CompartmentDefinition/patient"
COMPARTMENT_PARAM = "patient"


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

    def patient_compartment(self) -> tuple[str, ...]:
        """The types searchable as Patient/{id}/{type}: those whose provider searches by a
        `patient` reference to Patient, while Patient itself is served. The route, the
        CapabilityStatement and the OpenAPI document all read this."""
        if "Patient" not in self._providers:
            return ()
        return tuple(
            p.resource_type
            for p in self
            if "search-type" in p.interactions
            and any(
                s.name == COMPARTMENT_PARAM and s.type == "reference" and "Patient" in s.target_types
                for s in p.search_params
            )
        )

    def __iter__(self) -> Iterator[ResourceProvider]:
        return iter(sorted(self._providers.values(), key=lambda p: p.resource_type))

    def __len__(self) -> int:
        return len(self._providers)
