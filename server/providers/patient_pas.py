"""Patient from PDS and from the PAS store: one composite provider.

PAS patients have ids `pas-{hospitalNumber}` and are found by
`identifier={hospital-number system}|H123`; everything else goes to the wrapped PDS
provider unchanged. A PAS patient is always shown refreshed with PDS (server.pas.merge),
exactly as the PAS REST side shows it.
"""

from __future__ import annotations

import dataclasses

from server.fhir.errors import NotFound
from server.fhir.search_params import ParsedParam, SearchParamSpec, TokenValue
from server.fhir.search_request import SearchRequest
from server.pas.errors import PASError
from server.pas.records import hospital_number_of
from server.pas.service import PASService
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult, with_common_params

UK_CORE_PATIENT = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"


class PatientWithPAS(ResourceProvider):
    resource_type = "Patient"

    def __init__(self, inner: ResourceProvider | None, service: PASService) -> None:
        self.inner = inner
        self.service = service
        system = service.mappings.hospital_number_system
        self.hospital_system = system
        # Declarations are per instance here: they are the wrapped provider's plus PAS's.
        self.profile = inner.profile if inner else UK_CORE_PATIENT  # type: ignore[misc]
        self.documentation = (  # type: ignore[misc]
            (inner.documentation + " " if inner else "")
            + f"PAS patients have ids pas-{{hospital number}} and are found by identifier "
            f"{system}|{{hospital number}}; they are shown refreshed with PDS demographics."
        )
        self.interactions = inner.interactions if inner else ("read", "vread", "search-type")  # type: ignore[misc]
        self.includes = inner.includes if inner else ()  # type: ignore[misc]
        self.identifier_systems = (*(inner.identifier_systems if inner else ()), system)  # type: ignore[misc]
        params = list(inner.search_params) if inner else []
        identifier = next((p for p in params if p.name == "identifier"), None)
        doc = f"Hospital number of a PAS patient: {system}|H123"
        merged = (
            dataclasses.replace(identifier, documentation=f"{identifier.documentation}; or {doc}")
            if identifier
            else SearchParamSpec(
                "identifier", "token", doc, "http://hl7.org/fhir/SearchParameter/Patient-identifier", path="identifier"
            )
        )
        self.last_updated = inner.last_updated if inner else False  # type: ignore[misc]
        self.search_copies_complete = inner.search_copies_complete if inner else True  # type: ignore[misc]
        own = tuple(merged if p.name == "identifier" else p for p in params) or (merged,)
        self.search_params = with_common_params(own, self.last_updated)  # type: ignore[misc]

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        hn = hospital_number_of(resource_id)
        if hn is not None:
            try:
                return (await self.service.view(hn, ctx)).fhir
            except PASError as err:
                if err.status == 404:
                    raise NotFound(f"Patient/{resource_id} is not known") from None
                raise err.to_fhir() from None
        if self.inner is None:
            raise NotFound(f"Patient/{resource_id} is not known")
        return await self.inner.read(resource_id, ctx)

    def _hospital_numbers(self, params: list[ParsedParam]) -> tuple[list[str], bool]:
        """Hospital numbers asked for (AND across parameters) and whether PDS is asked too."""
        wanted: set[str] | None = None
        other = False
        for param in params:
            numbers = set()
            for value in param.values:
                assert isinstance(value, TokenValue)
                if value.system == self.hospital_system and value.code:
                    numbers.add(value.code)
                else:
                    other = True
                    if value.any_system and value.code:
                        numbers.add(value.code)
            wanted = numbers if wanted is None else wanted & numbers
        return sorted(wanted or ()), other

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        identifiers = [p for p in request.get("identifier") if not p.modifier]
        numbers, ask_inner = self._hospital_numbers(identifiers) if identifiers else ([], True)
        result = SearchResult(matches=[])
        for hn in numbers:
            try:
                result.matches.append((await self.service.view(hn, ctx)).fhir)
            except PASError as err:
                if err.status != 404:
                    raise err.to_fhir() from None
        if ask_inner and self.inner is not None:
            inner = await self.inner.search(request, ctx)
            seen = {m.get("id") for m in result.matches}
            result.matches.extend(m for m in inner.matches if m.get("id") not in seen)
            result.issues.extend(inner.issues)
            result.scores.update(inner.scores)
        return result
