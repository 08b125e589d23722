"""Build, from settings, the auth each NHS client gets: one place, used by server.sources.wiring.

`AuthProfiles.for_api(api, access)` is the per-API choice: "application" APIs share one
self-renewing application token, "user" APIs act for the caller. auth_mode "none" (the
default, for the emulator and NHS's open sandbox) sends no credentials at all.

Sandbox with signed-jwt and no key configured: an ephemeral key pair is generated at
start and its JWKS registered with the embedded emulator, so the real signing path runs
in `make run` too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import aiohttp

from server.nhs.auth.assertion import ClientAssertionSigner
from server.nhs.auth.headers import AppRestrictedAuth, CallerTokenIfAny, ExchangedTokens, UserRestrictedAuth
from server.nhs.auth.keys import (
    KeyConfigError,
    generate_key_pair,
    jwks,
    load_signing_key,
    public_jwk_from_pem,
    read_private_pem,
)
from server.nhs.auth.token_endpoint import TokenEndpoint
from server.nhs.auth.tokens import TokenCache
from server.nhs.client import AuthHeaders, NoAuth
from server.settings import Settings

log = logging.getLogger("facade.auth")

Access = Literal["application", "user"]

EMULATOR_TOKEN_PATH = "oauth2/token"
EMULATOR_CLIENTS_PATH = "_control/oauth/clients"
SANDBOX_API_KEY = "sandbox-api-key"
SANDBOX_KID = "sandbox-ephemeral"


@dataclass(frozen=True)
class AuthProfiles:
    """The AuthHeaders for each access mode; built once in the app lifespan."""

    application: AuthHeaders
    exchanged: ExchangedTokens | None = None
    enabled: bool = False

    @classmethod
    def none(cls) -> AuthProfiles:
        return cls(application=NoAuth())

    async def aclose(self) -> None:
        """Stop the background token renewals; the lifespan calls this before closing the session."""
        if isinstance(self.application, AppRestrictedAuth):
            await self.application.aclose()
        if self.exchanged is not None:
            await self.exchanged.aclose()

    def for_api(self, api: str, access: Access) -> AuthHeaders:
        """What NHSClient for `api` sends: no credentials, the app token, or the user's."""
        if not self.enabled:
            return CallerTokenIfAny() if access == "user" else NoAuth()
        if access == "user":
            return UserRestrictedAuth(api, self.exchanged)
        return self.application


async def build_auth(settings: Settings, session: aiohttp.ClientSession, emulator_url: str | None) -> AuthProfiles:
    """AuthProfiles for these settings; registers the key with the embedded emulator when used."""
    if settings.auth_mode == "none":
        return AuthProfiles.none()
    token_url = settings.token_url or (f"{emulator_url}/{EMULATOR_TOKEN_PATH}" if emulator_url else None)
    if token_url is None:
        raise KeyConfigError("signed-jwt auth needs FACADE_TOKEN_URL")
    has_key = settings.private_key is not None or settings.private_key_path is not None
    if has_key:
        pem = read_private_pem(
            settings.private_key_path, settings.private_key.get_secret_value() if settings.private_key else None
        )
        if settings.api_key is None or not settings.key_id:
            raise KeyConfigError("signed-jwt auth needs FACADE_API_KEY and FACADE_KEY_ID with the key")
        api_key, kid = settings.api_key.get_secret_value(), settings.key_id
    elif settings.token_url is None and emulator_url:
        pem = generate_key_pair(bits=2048).private_pem  # ephemeral: lives as long as this process
        api_key = settings.api_key.get_secret_value() if settings.api_key else SANDBOX_API_KEY
        kid = settings.key_id or SANDBOX_KID
    else:
        raise KeyConfigError("signed-jwt auth needs FACADE_PRIVATE_KEY_PATH or FACADE_PRIVATE_KEY")
    key = load_signing_key(pem)
    if settings.token_url is None and emulator_url:
        await _register_with_emulator(session, emulator_url, api_key, jwks(public_jwk_from_pem(pem, kid)))
    endpoint = TokenEndpoint(
        session,
        ClientAssertionSigner(api_key=api_key, kid=kid, key=key, token_url=token_url),
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
    )
    log.info("NHS auth: signed-jwt, kid %s, user tokens %s", kid, settings.user_token_mode)
    exchanged = ExchangedTokens(endpoint.exchange) if settings.user_token_mode == "exchange" else None
    return AuthProfiles(
        application=AppRestrictedAuth(TokenCache(endpoint.client_credentials)), exchanged=exchanged, enabled=True
    )


async def _register_with_emulator(
    session: aiohttp.ClientSession, emulator_url: str, api_key: str, key_set: dict[str, object]
) -> None:
    """The emulator's stand-in for uploading the public key in the NHS developer portal."""
    async with session.post(
        f"{emulator_url}/{EMULATOR_CLIENTS_PATH}", json={"api_key": api_key, "jwks": key_set}
    ) as resp:
        if resp.status != 200:
            raise KeyConfigError(f"the emulator refused the sandbox JWKS (HTTP {resp.status})")
