"""The provider contract: what a resource provider declares and implements.

A provider declares its type, profile, interactions, search parameters and includes
(the CapabilityStatement is built from exactly these), and implements read/search on
already-parsed parameters. Parsing, paging, bundles, includes and errors live in the
server, once.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from server.access.principal import Principal
from server.fhir.errors import NotImplementedInteraction
from server.fhir.outcome import Issue
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchDeclaration, SearchRequest

if TYPE_CHECKING:
    from server.access.quota import CallerQuota

Resource = dict[str, Any]


@dataclass(frozen=True)
class RequestContext:
    """Who is asking and how to correlate: passed to every provider call.

    `user_token` is the caller's NHS user credential (a CIS2 token for user-restricted
    NHS APIs; see server.access.nhs_identity for where it comes from), passed through or
    exchanged, never logged. `headers` are the inbound request headers, for NHS context
    headers such as NHSD-Session-URID that come from the caller. `principal` is the
    authenticated caller (server.access), None only for the public discovery endpoints.
    """

    request_id: str
    base_url: str
    user_token: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    quota: CallerQuota | None = None  # charged per NHS request sent for this caller (server.nhs.client)

    def caller_identity(self, *, per_user: bool = False) -> str:
        """A digest of what makes this caller's NHS answers differ from another's: the
        user's NHS token and the NHSD-* context headers (session URID, role, org), and with
        `per_user` the authenticated user too. "" for an application-restricted caller.
        Single-flight and the cache key on it, so one user's data never reaches another;
        the token is never stored."""
        nhsd = sorted((k.lower(), v) for k, v in self.headers.items() if k.lower().startswith("nhsd-"))
        user = (f"{self.principal.issuer}\0{self.principal.subject}"
                if per_user and self.principal is not None else "")
        if not self.user_token and not nhsd and not user:
            return ""
        digest = hashlib.sha256((self.user_token or "").encode())
        for name, value in nhsd:
            digest.update(b"\0" + name.encode() + b"=" + value.encode())
        if user:
            digest.update(b"\0user=" + user.encode())
        return digest.hexdigest()


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
