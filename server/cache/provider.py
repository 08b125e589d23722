"""CachingProvider: any ResourceProvider, with the read-through cache in front of it.

Applied in the composition root to every provider a factory returns, so providers
written later (and never seen here) are cached without knowing it. The wrapper shows
the inner provider's declarations and every other method unchanged: only `read` and
`search` go through the cache. A provider opts out with `cacheable = False`.
"""

from __future__ import annotations

from typing import Any

from server.cache.read_through import ReadThrough
from server.fhir.search_request import SearchRequest
from server.providers.base import RequestContext, Resource, ResourceProvider, SearchResult

_CACHED = frozenset({"read", "search"})


class CachingProvider(ResourceProvider):
    def __init__(self, inner: ResourceProvider, cache: ReadThrough) -> None:
        self.inner = inner
        self.cache = cache
        # Everything the provider contract declares (ClassVars and methods alike) is the
        # inner provider's, so the registry, CapabilityStatement and includes see no wrapper.
        for name in dir(ResourceProvider):
            if not name.startswith("_") and name not in _CACHED:
                setattr(self, name, getattr(inner, name))

    def __getattr__(self, name: str) -> Any:
        # Anything beyond the base contract (a provider's own helpers) is the inner's too.
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"CachingProvider({self.inner!r})"

    async def read(self, resource_id: str, ctx: RequestContext) -> Resource:
        return await self.cache.read(self.inner, resource_id, ctx)

    async def search(self, request: SearchRequest, ctx: RequestContext) -> SearchResult:
        return await self.cache.search(self.inner, request, ctx)


def with_cache(provider: ResourceProvider, cache: ReadThrough | None) -> ResourceProvider:
    """The provider behind the cache, unless there is no cache or it opted out."""
    if cache is None or not getattr(provider, "cacheable", True):
        return provider
    return CachingProvider(provider, cache)
