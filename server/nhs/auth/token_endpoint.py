"""The NHS OAuth2 token endpoint over aiohttp: client credentials and token exchange.

Both grants authenticate with a fresh signed-JWT client assertion. Failures become the
upstream error types, so server.providers.upstream_errors.to_fhir_error decides what the client sees:
400/401/403 here mean our credentials (or, for token exchange, the user's subject_token)
were refused. Neither the assertion nor the token is ever logged.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson

from server.nhs.auth.assertion import ClientAssertionSigner
from server.nhs.auth.tokens import TOKEN_SERVICE, IssuedToken, parse_token_response
from server.nhs.errors import (
    UpstreamBadResponse,
    UpstreamCredentialsRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = logging.getLogger("facade.auth")

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


def token_error(status: int, body: Any) -> UpstreamError:
    """The typed failure for a non-200 token endpoint answer (pure; unit-tested)."""
    error = body.get("error") if isinstance(body, dict) else None
    description = body.get("error_description") if isinstance(body, dict) else None
    message_id = body.get("message_id") if isinstance(body, dict) else None
    said = "; ".join(str(x) for x in (error, description) if x) or f"HTTP {status}"
    diagnostics = f"{said} (message_id {message_id})" if message_id else said
    if status in (400, 401, 403):
        about_user = isinstance(description, str) and "subject_token" in description
        return UpstreamCredentialsRejected(
            TOKEN_SERVICE, f"HTTP {status}", status=status, diagnostics=diagnostics, user_token_used=about_user
        )
    if status == 429:
        return UpstreamRateLimited(TOKEN_SERVICE, "HTTP 429", status=status, diagnostics=diagnostics)
    if status == 504:
        return UpstreamTimeout(TOKEN_SERVICE, "HTTP 504", status=status)
    if status >= 500:
        return UpstreamUnavailable(TOKEN_SERVICE, f"HTTP {status}", status=status, diagnostics=diagnostics)
    return UpstreamBadResponse(TOKEN_SERVICE, f"unexpected HTTP {status}", status=status)


class TokenEndpoint:
    """POSTs form-encoded grants to the token URL with a fresh client assertion each time."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        signer: ClientAssertionSigner,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._signer = signer
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)

    @property
    def url(self) -> str:
        return self._signer.token_url

    async def client_credentials(self) -> IssuedToken:
        """An application-restricted access token."""
        return await self._post({"grant_type": "client_credentials"})

    async def exchange(self, subject_token: str) -> IssuedToken:
        """A user-restricted access token for the caller's CIS2 id_token (separate auth)."""
        return await self._post(
            {
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "subject_token_type": ID_TOKEN_TYPE,
                "subject_token": subject_token,
            }
        )

    async def _post(self, form: dict[str, str]) -> IssuedToken:
        data = {**form, "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": self._signer.sign()}
        try:
            async with self._session.post(
                self.url, data=data, timeout=self._timeout, headers={"Accept": "application/json"}
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise UpstreamTimeout(TOKEN_SERVICE, "timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(TOKEN_SERVICE, f"connection failed ({type(exc).__name__})") from None
        log.info("token endpoint %s -> %s", form["grant_type"].rsplit(":", 1)[-1], status)
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if status != 200:
            raise token_error(status, body)
        return parse_token_response(body)
