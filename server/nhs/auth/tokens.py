"""Access tokens: parse the token endpoint's answer, cache the token, renew it once.

NHS issues no refresh token for client credentials: a token lives about 10 minutes
(`expires_in` arrives as the string "599") and a new assertion buys a new one. The
cache renews at 80% of the lifetime; callers holding a still-valid token carry on while
one shared renewal runs, and callers without one all await that same renewal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.nhs.errors import UpstreamBadResponse

log = logging.getLogger("facade.auth")

TOKEN_SERVICE = "NHS token endpoint"
RENEW_AT = 0.8  # renew after 80% of the lifetime (nhs-apis.md 3.1)
EXPIRY_MARGIN = 5.0  # never send a token in its last seconds: clocks and queues drift


@dataclass(frozen=True)
class IssuedToken:
    """What the token endpoint said: the token and its lifetime in seconds."""

    value: str
    lifetime: float

    def __repr__(self) -> str:
        return f"IssuedToken(lifetime={self.lifetime})"


@dataclass(frozen=True)
class CachedToken:
    value: str
    renew_at: float
    expires_at: float

    def __repr__(self) -> str:
        return f"CachedToken(renew_at={self.renew_at}, expires_at={self.expires_at})"


def parse_token_response(body: Any) -> IssuedToken:
    """Read access_token and expires_in (a string at NHS, a number elsewhere)."""
    if not isinstance(body, dict):
        raise UpstreamBadResponse(TOKEN_SERVICE, "token response is not a JSON object")
    value = body.get("access_token")
    if not isinstance(value, str) or not value:
        raise UpstreamBadResponse(TOKEN_SERVICE, "token response has no access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise UpstreamBadResponse(TOKEN_SERVICE, "token response is not a Bearer token")
    raw = body.get("expires_in")
    try:
        lifetime = float(raw) if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else None
    except ValueError:
        lifetime = None
    if lifetime is None or not lifetime > 0 or lifetime != lifetime or lifetime == float("inf"):
        raise UpstreamBadResponse(TOKEN_SERVICE, "token response has no usable expires_in")
    return IssuedToken(value, lifetime)


def cache_entry(issued: IssuedToken, obtained_at: float) -> CachedToken:
    """When to renew and when to stop using a token obtained at `obtained_at`."""
    margin = min(EXPIRY_MARGIN, issued.lifetime * 0.1)
    return CachedToken(issued.value, obtained_at + issued.lifetime * RENEW_AT, obtained_at + issued.lifetime - margin)


class TokenCache:
    """One token, renewed before expiry; concurrent callers share a single renewal."""

    def __init__(
        self, fetch: Callable[[], Awaitable[IssuedToken]], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: CachedToken | None = None
        self._renewal: asyncio.Future[CachedToken] | None = None

    def __repr__(self) -> str:
        return f"TokenCache(token={self._token!r})"

    async def get(self) -> str:
        """A valid access token: cached, or from the one renewal in flight."""
        now = self._clock()
        token = self._token
        if token is not None and now < token.renew_at:
            return token.value
        renewal = self._start_renewal()
        if token is not None and now < token.expires_at:
            return token.value  # still valid: the renewal runs in the background
        return (await asyncio.shield(renewal)).value

    async def aclose(self) -> None:
        """Cancel and await a renewal still in flight.

        Called by the app lifespan before the aiohttp session closes: a renewal left
        running would otherwise fail against the closed session after shutdown, or be
        destroyed pending when the loop stops.
        """
        renewal = self._renewal
        if renewal is not None:
            renewal.cancel()
            await asyncio.gather(renewal, return_exceptions=True)

    def _start_renewal(self) -> asyncio.Future[CachedToken]:
        if self._renewal is None:
            self._renewal = asyncio.ensure_future(self._renew())
            self._renewal.add_done_callback(self._renewal_done)
        return self._renewal

    async def _renew(self) -> CachedToken:
        issued = await self._fetch()
        entry = cache_entry(issued, self._clock())
        self._token = entry
        return entry

    def _renewal_done(self, future: asyncio.Future[CachedToken]) -> None:
        self._renewal = None
        if future.cancelled():
            return
        # Retrieved here so a background renewal's failure is not reported as unhandled;
        # the next caller without a valid token starts a new renewal and sees the error.
        error = future.exception()
        if error is not None:
            log.warning("access token renewal failed: %s", error)
