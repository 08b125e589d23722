"""What a source's provider factories get: the shared session, NHS auth, resolved URLs and
settings, and one set of resilience guards per NHS API. Built once in the app lifespan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from pymongo.asynchronous.collection import AsyncCollection

from server.nhs.auth.profiles import Access, AuthProfiles
from server.nhs.client import ClientConfig, NHSClient, UpstreamCall, UpstreamResponse
from server.nhs.errors import UpstreamUnavailable
from server.nhs.rate_limiter import TokenBucket
from server.nhs.resilience import Resilience, ResilienceConfig, resilience_for
from server.nhs.resilient_client import ResilientClient
from server.nhs.retry_policy import RetryPolicy
from server.nhs.shared_rate_limiter import SharedTokenBucket
from server.request_context import RequestContext
from server.settings import Settings
from server.sources.upstream import SourceSettings, Upstream

S = TypeVar("S", bound=SourceSettings)


def resilience_config(settings: Settings) -> ResilienceConfig:
    """The FACADE_UPSTREAM_* settings as the NHS layer's resilience config."""
    return ResilienceConfig(
        retry=RetryPolicy(
            settings.upstream_retry_attempts, settings.upstream_backoff_base, settings.upstream_backoff_max
        ),
        budget=settings.upstream_request_budget,
        breaker_threshold=settings.upstream_breaker_threshold,
        breaker_open_seconds=settings.upstream_breaker_open_seconds,
        concurrency=settings.upstream_concurrency,
        single_flight=settings.upstream_single_flight,
    )


class UnservedClient(NHSClient):
    """The client of an NHS API no registered source serves: every call is unavailable."""

    async def _perform(self, call: UpstreamCall, ctx: RequestContext) -> UpstreamResponse:
        raise UpstreamUnavailable(self.api, "no source serving this NHS API is registered")


@dataclass(frozen=True)
class Wiring:
    settings: Settings
    session: aiohttp.ClientSession
    upstreams: Mapping[str, str]  # base URL per upstream key (server.sources.config.Upstreams)
    source_settings: Mapping[type[SourceSettings], SourceSettings] = field(default_factory=dict)
    rate_limits: Mapping[str, float] = field(default_factory=dict)  # requests/s per NHS API
    nhs_urls: tuple[str | None, ...] = ()  # as configured, None = emulator (SourceConfig.configured_urls)
    auth: AuthProfiles = field(default_factory=AuthProfiles.none)
    # With MongoDB configured: the collection of the deployment-wide NHS rate budgets
    # (server.nhs.shared_rate_limiter); None = each process limits itself.
    shared_rate_budget: AsyncCollection[dict[str, Any]] | None = None
    guards: dict[str, Resilience] = field(default_factory=dict, compare=False)
    # (api, access) of every client made, in order: the composition root reads which APIs
    # each provider factory wired, and how, so the CapabilityStatement's security section and
    # the SMART document say which types need the caller's token without a hand-kept list.
    accesses: list[tuple[str, Access]] = field(default_factory=list, compare=False)

    def settings_of(self, kind: type[S]) -> S:
        """A source's own settings (its SourceSettings class); for a source not registered,
        its settings as the environment gives them."""
        found = self.source_settings.get(kind) or kind()
        assert isinstance(found, kind)
        return found

    def client(self, upstream: Upstream, access: Access = "application") -> NHSClient:
        """An NHSClient for `upstream`; `access` picks application- or user-restricted auth.
        An upstream whose source is not registered (the PAS tracer's PDS in a façade without
        PDS) gets a client that fails every call as unavailable, which its callers handle
        as they handle an outage."""
        if upstream.key not in self.upstreams:
            return UnservedClient(self.session, ClientConfig(api=upstream.api, base_url="unserved:"))
        self.accesses.append((upstream.api, access))
        s = self.settings
        return ResilientClient(
            self.session,
            ClientConfig(
                api=upstream.api,
                base_url=self.upstreams[upstream.key],
                connect_timeout=s.upstream_connect_timeout,
                read_timeout=s.upstream_read_timeout,
                end_user_ods=s.end_user_ods,
                error_codes=upstream.error_codes,
            ),
            self.resilience(upstream.api),
            auth=self.auth.for_api(upstream.api, access),
        )

    async def aclose(self) -> None:
        """Stop what the clients run in the background (shared upstream flights)."""
        for guard in self.guards.values():
            if guard.flights is not None:
                await guard.flights.aclose()

    def resilience(self, api: str) -> Resilience:
        """One breaker, rate limit and concurrency limit per NHS API, shared by all its clients."""
        if api not in self.guards:
            guard = resilience_for(api, resilience_config(self.settings), self.rate_limits.get(api))
            if self.shared_rate_budget is not None and isinstance(guard.rate_limit, TokenBucket):
                bucket = guard.rate_limit
                guard.rate_limit = SharedTokenBucket(api, bucket.rate, self.shared_rate_budget, bucket)
            self.guards[api] = guard
        return self.guards[api]
