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

from server.fhir.errors import FHIRError, NotFound, NotImplementedInteraction, NotSupportedParameter
from server.fhir.outcome import Issue
from server.fhir.search_match import Unevaluable, local_params, matches
from server.fhir.search_params import ParsedParam, SearchParamSpec, TokenValue, all_of
from server.fhir.search_request import SearchDeclaration, SearchRequest
from server.request_context import RequestContext as RequestContext  # part of the provider contract

Resource = dict[str, Any]
SP = "http://hl7.org/fhir/SearchParameter/"

# Declared for every type, whatever its source (ResourceProvider.__init_subclass__ adds them):
# `_id` is the resource's own id, matched locally by the one matcher; a search by `_id`
# alone is answered by reads (ResourceProvider.search).
ID_PARAM = SearchParamSpec(
    "_id",
    "token",
    "The resource id (logical id): that resource or none",
    SP + "Resource-id",
    path="id",
    modifiers=("not",),  # :missing and :text say nothing about an id
    evaluated="local",
)
# Only where the data carries meta.lastUpdated (the provider declares `last_updated`).
LAST_UPDATED_PARAM = SearchParamSpec(
    "_lastUpdated",
    "date",
    "When the resource last changed (meta.lastUpdated); eq, ne, gt, lt, ge, le, sa, eb, ap",
    SP + "Resource-lastUpdated",
    path="meta.lastUpdated",
    evaluated="local",
)


def with_common_params(params: tuple[SearchParamSpec, ...], last_updated: bool) -> tuple[SearchParamSpec, ...]:
    """`params` plus the parameters every type gets (`_id`, and `_lastUpdated` where the
    data has meta.lastUpdated), each once: a provider's own declaration of one wins."""
    names = {p.name for p in params}
    common = (ID_PARAM, LAST_UPDATED_PARAM) if last_updated else (ID_PARAM,)
    return params + tuple(p for p in common if p.name not in names)


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
    # True when every resource this provider answers carries meta.lastUpdated: reads then
    # send Last-Modified (so If-Modified-Since works: conditionalRead full-support, else
    # not-match) and `_lastUpdated` is declared. A declaration, so the CapabilityStatement,
    # the OpenAPI document and the parser all read the same fact.
    last_updated: ClassVar[bool] = False
    # False when the source's search answers hold less than its reads under the same
    # upstream versionId (PDS search results lack extensions a PDS read has, e.g. the
    # nominated pharmacy). The server then marks each search copy (server.fhir.versioning
    # .search_copy): a client revalidating it with If-None-Match must not get 304.
    search_copies_complete: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every provider class that declares search parameters gets the common ones."""
        super().__init_subclass__(**kwargs)
        if "search_params" in cls.__dict__ or "last_updated" in cls.__dict__:
            cls.search_params = with_common_params(cls.search_params, cls.last_updated)

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
        ids = self._ids_to_read(request.params, specs)
        if ids is not None:
            return SearchResult(matches=[r for r in await self._read_each(ids, ctx) if matches(r, local, specs)])
        result = await self.fetch(request, ctx)
        if not local:
            return result
        return dataclasses.replace(result, matches=[m for m in result.matches if matches(m, local, specs)])

    def _ids_to_read(self, params: tuple[ParsedParam, ...], specs: dict[str, SearchParamSpec]) -> list[str] | None:
        """The ids a search names with `_id`, when reading them answers it exactly: every
        other parameter is evaluated locally, so reads plus the one matcher give what a
        fetch would. None otherwise (then `_id` filters what fetch answers). Reads, not
        the source's search, because an id is all a client may know (most NHS searches
        need a patient), and a read is the one request that finds a resource by id."""
        id_params = [p for p in params if p.name == "_id"]
        if not id_params or "read" not in self.interactions:
            return None
        if any(p.modifier for p in id_params):
            return None
        if any(specs[p.name].evaluated != "local" for p in params if p.name != "_id"):
            return None
        wanted = all_of({v.code for v in p.values if isinstance(v, TokenValue) and v.code} for p in id_params)
        return sorted(wanted or ())

    async def _read_each(self, ids: list[str], ctx: RequestContext) -> list[Resource]:
        found = []
        for resource_id in ids:
            try:
                found.append(await self.read(resource_id, ctx))
            except NotFound:
                continue  # no such resource: the search finds none
            except FHIRError as err:
                if err.status in (400, 404, 410):  # not an id this source issues, or gone
                    continue
                raise
        return found

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
