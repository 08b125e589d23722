"""The signed-JWT client assertion NHS's token endpoint accepts (private_key_jwt).

NHS rules (nhs-apis.md 3.1): header alg RS512, kid, typ JWT; claims iss = sub = API
key, aud = token URL, a unique jti, and exp at most 5 minutes ahead. Authlib's
PrivateKeyJWT signs with exp = iat + 3600 by default, which NHS rejects, so exp is
computed here for every assertion.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import RSAKey

ALGORITHM = "RS512"
MAX_LIFETIME = 300  # NHS: exp no more than 5 minutes after now (server tolerance 310 s)


class ClientAssertionSigner:
    """Signs one fresh assertion per token request; holds the key, never exposes it."""

    def __init__(
        self,
        *,
        api_key: str,
        kid: str,
        key: RSAKey,
        token_url: str,
        lifetime: int = MAX_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < lifetime <= MAX_LIFETIME:
            raise ValueError(f"assertion lifetime must be 1..{MAX_LIFETIME} seconds (NHS rule)")
        self._api_key = api_key
        self._kid = kid
        self._key = key
        self.token_url = token_url
        self._lifetime = lifetime
        self._clock = clock

    def __repr__(self) -> str:  # keep the key and API key out of any debug output
        return f"ClientAssertionSigner(kid={self._kid!r}, token_url={self.token_url!r})"

    def sign(self) -> str:
        """A new RS512 JWT with its own jti and exp = now + lifetime (<= 300 s)."""
        now = int(self._clock())
        return private_key_jwt_sign(
            self._key,
            client_id=self._api_key,
            token_endpoint=self.token_url,
            alg=ALGORITHM,
            claims={"jti": str(uuid.uuid4())},
            header={"kid": self._kid, "typ": "JWT"},
            issued_at=now,
            expires_at=now + self._lifetime,
        )
