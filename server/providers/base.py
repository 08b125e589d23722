"""The provider contract: what a resource provider declares and implements.

A provider declares its type, profile, interactions, search parameters and includes
(the CapabilityStatement is built from exactly these), and implements read and fetch on
already-parsed parameters. Parsing, local filtering (ResourceProvider.search), paging,
bundles, includes and errors live in the server, once.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from server.fhir.errors import NotImplementedInteraction, NotSupportedParameter
from server.fhir.outcome import Issue
from server.fhir.search_match import Unevaluable, local_params, matches
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
        """The current resource, or raise NotFound (or another FHIRError); an NHS failure
        escapes as its UpstreamError (server/providers/failures.py)."""

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        """The one search path: `fetch` answers with what the provider's source evaluates,
        then the one matcher (server.fhir.search_match) keeps the matches that satisfy every
        parameter declared `evaluated="local"`, whichever source each match came from.

        Here rather than in the HTTP handler because every search reaches a provider
        through this method: the handler, _revinclude, the PAS service and the read-through
        cache (which so stores filtered answers). A provider therefore only translates its
        upstream-evaluated parameters into its source's query and may ignore the rest.
        A local parameter that cannot be evaluated is a 400 before `fetch` is called, so
        before any NHS API is. Wrappers (the cache) override this and call the wrapped
        provider's `search`; the PAS composites implement `fetch` over the wrapped
        provider's `search`, so NHS records are matched twice, which changes nothing.
        """
        specs = {p.name: p for p in self.search_params}
        try:
            local = local_params(request.params, specs)
        except Unevaluable as err:
            raise NotSupportedParameter(
                f"Parameter '{err.name}' cannot be evaluated on {self.resource_type} ({err.why})"
            ) from None
        result = await self.fetch(request, ctx)
        if not local:
            return result
        return dataclasses.replace(result, matches=[m for m in result.matches if matches(m, local, specs)])

    async def fetch(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        """What the source answers for a search: every record that may match, with the
        upstream-evaluated parameters applied (search applies the local ones)."""
        raise NotImplementedInteraction(f"search is not supported on {self.resource_type}")

    def declaration(self, default_count: int, max_count: int) -> SearchDeclaration:
        return SearchDeclaration(
            resource_type=self.resource_type,
            params=self.search_params,
            includes=self.includes,
            default_count=default_count,
            max_count=max_count,
        )

    def search_param(self, name: str) -> SearchParamSpec | None:
        return next((p for p in self.search_params if p.name == name), None)
