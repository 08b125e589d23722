"""AuthHeaders implementations (see server.nhs.client.AuthHeaders), one per NHS access mode.

- Application-restricted APIs get the façade's own token (signed-JWT client credentials).
- User-restricted APIs (Prescription Tracker, e-RS A041, GP Connect via the gateway, PDS
  in healthcare-worker mode) act for the signed-in user: the caller's CIS2-based bearer
  token is forwarded, or exchanged for an NHS access token when so configured. The
  façade cannot use one server-wide credential for them (nhs-apis.md 3.2).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from server.nhs.auth.tokens import IssuedToken, TokenCache
from server.nhs.errors import UserTokenMissing
from server.request_context import RequestContext


class AppRestrictedAuth:
    """Bearer token from the shared, self-renewing application token."""

    acts_for_user = False

    def __init__(self, tokens: TokenCache) -> None:
        self._tokens = tokens

    async def headers(self, ctx: RequestContext) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self._tokens.get()}"}

    async def aclose(self) -> None:
        await self._tokens.aclose()


class ExchangedTokens:
    """Exchanged user tokens, one self-renewing cache entry per caller token (bounded LRU).

    Keyed by a SHA-256 of the caller's token (fixed-size keys).
    """

    def __init__(self, exchange: Callable[[str], Awaitable[IssuedToken]], *, max_users: int = 1000) -> None:
        self._exchange = exchange
        self._max_users = max_users
        self._caches: OrderedDict[str, TokenCache] = OrderedDict()

    def __repr__(self) -> str:
        return f"ExchangedTokens(users={len(self._caches)})"

    async def access_token(self, subject_token: str) -> str:
        key = hashlib.sha256(subject_token.encode()).hexdigest()
        cache = self._caches.get(key)
        if cache is None:
            cache = TokenCache(lambda: self._exchange(subject_token))
            self._caches[key] = cache
            while len(self._caches) > self._max_users:
                self._caches.popitem(last=False)
        else:
            self._caches.move_to_end(key)
        return await cache.get()

    async def aclose(self) -> None:
        """Cancel every user's renewal still in flight (see TokenCache.aclose)."""
        await asyncio.gather(*(cache.aclose() for cache in self._caches.values()))


def missing_user_token(api: str) -> UserTokenMissing:
    """The 401 a caller gets when a user-restricted NHS API needs their CIS2 token."""
    return UserTokenMissing(
        f"{api} is a user-restricted NHS API: send the signed-in user's NHS CIS2 token in the "
        "'X-NHS-User-Token' header",
        headers={
            "WWW-Authenticate": 'Bearer realm="nhs-fhir-facade", error="invalid_token", '
            f'error_description="{api} needs an NHS CIS2 user token"'
        },
    )


class CallerTokenIfAny:
    """No auth configured (sandbox): forward the caller's token when there is one.

    The emulator and NHS's open sandboxes need no credentials, but a user-restricted API
    behind a gateway may still want the caller's token, and forwarding it proves in tests
    that it reaches the upstream. Nothing is required, so `make run` works without one."""

    acts_for_user = True

    async def headers(self, ctx: RequestContext) -> dict[str, str]:
        return {"Authorization": f"Bearer {ctx.user_token}"} if ctx.user_token else {}


class UserRestrictedAuth:
    """The caller's token, passed through or exchanged; none given is a 401 naming the API."""

    acts_for_user = True

    def __init__(self, api: str, exchanged: ExchangedTokens | None = None) -> None:
        self.api = api
        self._exchanged = exchanged

    async def headers(self, ctx: RequestContext) -> dict[str, str]:
        if not ctx.user_token:
            raise missing_user_token(self.api)
        token = ctx.user_token
        if self._exchanged is not None:
            token = await self._exchanged.access_token(token)
        return {"Authorization": f"Bearer {token}"}
