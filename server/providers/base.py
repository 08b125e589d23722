"""The provider contract: what a resource provider declares and implements.

A provider declares its type, profile, interactions, search parameters and includes
(the CapabilityStatement is built from exactly these), and implements read/search on
already-parsed parameters. Parsing, paging, bundles, includes and errors live in the
server, once.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from server.fhir.errors import NotImplementedInteraction
from server.fhir.outcome import Issue
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchDeclaration, SearchRequest
from server.request_context import RequestContext as RequestContext  # part of the provider contract

Resource = dict[str, Any]


@dataclass
class SearchResult:
    """All matches of a search (the server pages them) plus warnings for the client."""

    matches: list[Resource]
    issues: list[Issue] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # entry.search.score by id


class ResourceProvider(ABC):
    """One resource type from one source."""

    resource_type: ClassVar[str]
    profile: ClassVar[str | None] = None
    documentation: ClassVar[str] = ""
    interactions: ClassVar[tuple[str, ...]] = ("read", "vread", "search-type")
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = ()
    includes: ClassVar[tuple[str, ...]] = ()
    rev_includes: ClassVar[tuple[str, ...]] = ()
    identifier_systems: ClassVar[tuple[str, ...]] = ()
    # Search values this source applies when a search does not mention the parameter,
    # as (name, value) pairs in search syntax: GP Connect answers active allergies only
    # unless clinical-status asks otherwise. A composite applies the same defaults to the
    # records it adds from elsewhere (the PAS), so one answer never mixes two rules.
    default_filters: ClassVar[tuple[tuple[str, str], ...]] = ()
    # True when the NHS API is told which user asks (GP Connect's consumer JWT names the
    # practitioner, and the GP system audits on it): an answer fetched for one user is then
    # never served to another from the cache, so the GP's audit sees everyone who looked.
    names_the_user_upstream: ClassVar[bool] = False
    # True when the provider answers `patient=pas-{hospital number}` itself (the PAS
    # composites): the PAS service then asks it by PAS id rather than by NHS number.
    understands_pas_ids: ClassVar[bool] = False

    @abstractmethod
    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        """The current resource, or raise NotFound (or another FHIRError)."""

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        raise NotImplementedInteraction(f"search is not supported on {self.resource_type}")

    def declaration(self, default_count: int, max_count: int) -> SearchDeclaration:
        return SearchDeclaration(
            resource_type=self.resource_type,
            params=self.search_params,
            includes=self.includes,
            rev_includes=self.rev_includes,
            default_count=default_count,
            max_count=max_count,
        )

    def search_param(self, name: str) -> SearchParamSpec | None:
        return next((p for p in self.search_params if p.name == name), None)
