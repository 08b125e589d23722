"""An NHSClient whose request() goes through the API's Resilience guards.

Providers and typed clients (PDSClient, ...) keep calling `request()`; this subclass
overrides only how a logical request is performed (`_perform`), adding retries with one
X-Request-ID, the budget, the breaker, the limits and, for GET and HEAD, single-flight.
Built by server.sources.wiring.Wiring.client.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace

import aiohttp
import orjson
from multidict import CIMultiDict

from server.nhs.client import AuthHeaders, ClientConfig, NHSClient, UpstreamCall, UpstreamResponse
from server.nhs.resilience import Resilience
from server.request_context import RequestContext

SHAREABLE_METHODS = frozenset({"GET", "HEAD"})


def flight_key(
    method: str,
    url: str,
    params: Sequence[tuple[str, str]] | None,
    headers: Mapping[str, str] | None,
    ctx: RequestContext,
) -> Hashable:
    """Identical upstream reads by the same caller have equal keys."""
    return (method.upper(), url, tuple(params or ()), tuple(sorted((headers or {}).items())), ctx.caller_identity())


class ResilientClient(NHSClient):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: ClientConfig,
        resilience: Resilience,
        auth: AuthHeaders | None = None,
    ) -> None:
        super().__init__(session, config, auth)
        self.resilience = resilience

    async def _perform(self, call: UpstreamCall, ctx: RequestContext) -> UpstreamResponse:
        """NHSClient's one attempt, guarded. `call.retry_safe` lets a read-only POST be retried."""
        key = None
        if call.method.upper() in SHAREABLE_METHODS and call.json_body is None:
            key = (flight_key(call.method, self.url(call.path), call.params, call.headers, ctx), call.accepted)
        result = await self.resilience.call(
            call.method,
            functools.partial(self._attempt, call, ctx),
            retry_safe=call.retry_safe,
            flight_key=key,
            charge=functools.partial(self._charge, ctx),
        )
        if not result.shared:
            return result.value
        # Every sharer gets its own copy: a provider may edit the body it was given. The
        # headers stay case-insensitive, as the leader's are (NHS gateways send "etag").
        shared = result.value
        return replace(shared, headers=CIMultiDict(shared.headers), body=orjson.loads(orjson.dumps(shared.body)))
