"""An NHSClient whose request() goes through the API's Resilience guards.

Providers and typed clients (PDSClient, ...) keep calling `request()`; this subclass
adds retries with one X-Request-ID, the budget, the breaker, the limits and, for GET
and HEAD, single-flight. Built by server.providers.catalogue.Wiring.client.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Hashable, Mapping, Sequence

import aiohttp
import orjson

from server.nhs.client import AuthHeaders, ClientConfig, NHSClient, UpstreamResponse
from server.nhs.resilience import Resilience
from server.providers.base import RequestContext

SHAREABLE_METHODS = frozenset({"GET", "HEAD"})


def flight_key(method: str, url: str, params: Sequence[tuple[str, str]] | None,
               headers: Mapping[str, str] | None, ctx: RequestContext) -> Hashable:
    """Identical upstream reads by the same caller have equal keys."""
    return (method.upper(), url, tuple(params or ()), tuple(sorted((headers or {}).items())), ctx.caller_identity())


class ResilientClient(NHSClient):
    def __init__(self, session: aiohttp.ClientSession, config: ClientConfig, resilience: Resilience,
                 auth: AuthHeaders | None = None) -> None:
        super().__init__(session, config, auth)
        self.resilience = resilience

    async def request(
        self,
        method: str,
        path: str,
        ctx: RequestContext,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        accepted: Sequence[int] = (),
        retry_safe: bool = False,
    ) -> UpstreamResponse:
        """As NHSClient.request, guarded. `retry_safe` lets a read-only POST be retried."""

        async def attempt(request_id: str) -> UpstreamResponse:
            return await self.send(method, path, ctx, request_id, params=params, headers=headers,
                                   json_body=json_body, accepted=accepted)

        key = None
        if method.upper() in SHAREABLE_METHODS and json_body is None:
            key = (flight_key(method, self.url(path), params, headers, ctx), tuple(accepted))
        result = await self.resilience.call(method, attempt, retry_safe=retry_safe, flight_key=key)
        if not result.shared:
            return result.value
        # Every sharer gets its own copy: a provider may edit the body it was given.
        shared = result.value
        return replace(shared, headers=dict(shared.headers), body=orjson.loads(orjson.dumps(shared.body)))
