"""Test helpers for NHS signed-JWT auth: one cached test key pair, emulator control calls,
and a PyJWT signer for deliberately broken assertions."""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any

import aiohttp
import jwt

from server.nhs.auth.keys import KeyPair, generate_key_pair, jwks, public_jwk

API_KEY = "test-api-key"
KID = "test-kid-1"


@functools.cache
def _key_pair(name: str) -> KeyPair:
    return generate_key_pair(bits=2048)


def auth_key_pair(name: str = "default") -> KeyPair:
    """One key pair per name for the whole run; 2048-bit keeps the suite fast (keygen makes 4096)."""
    return _key_pair(name)


def auth_jwks(kid: str = KID, name: str = "default") -> dict[str, Any]:
    return jwks(public_jwk(auth_key_pair(name).public_numbers, kid))


async def register_client(
    http: aiohttp.ClientSession, emulator_url: str, api_key: str = API_KEY, key_set: dict[str, Any] | None = None
) -> None:
    async with http.post(
        f"{emulator_url}/_control/oauth/clients",
        json={"api_key": api_key, "jwks": key_set if key_set is not None else auth_jwks()},
    ) as r:
        assert r.status == 200


async def configure_oauth(http: aiohttp.ClientSession, emulator_url: str, **spec: Any) -> dict[str, Any]:
    async with http.post(f"{emulator_url}/_control/oauth", json=spec) as r:
        assert r.status == 200
        return await r.json()


async def oauth_stats(http: aiohttp.ClientSession, emulator_url: str) -> dict[str, Any]:
    async with http.get(f"{emulator_url}/_control/oauth") as r:
        return await r.json()


def pyjwt_assertion(
    token_url: str,
    *,
    api_key: str = API_KEY,
    kid: str | None = KID,
    alg: str = "RS512",
    lifetime: int = 300,
    jti: str | None = None,
    key_name: str = "default",
    claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """An assertion signed independently of the façade's signer, with any rule broken on purpose."""
    now = int(time.time())
    payload = {
        "iss": api_key,
        "sub": api_key,
        "aud": token_url,
        "jti": jti or str(uuid.uuid4()),
        "exp": now + lifetime,
        **(claims or {}),
    }
    extra = {"kid": kid} if kid else {}
    extra.update(headers or {})
    key: Any = auth_key_pair(key_name).private_pem
    if alg.startswith("HS"):
        key = "a-shared-secret-that-is-long-enough-for-hmac-sha-512-signing-xxxxxxxxxxxxxx"
    return jwt.encode(payload, key, algorithm=alg, headers=extra)


def client_credentials_form(assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }


def id_token(*, lifetime: int = 600, kid: str | None = "cis2-kid", iss: str | None = "https://cis2.example") -> str:
    """A CIS2-like id_token (HS256: the emulator checks its shape, not a CIS2 signature)."""
    claims: dict[str, Any] = {"sub": "user-1", "exp": int(time.time()) + lifetime, "aud": "app"}
    if iss:
        claims["iss"] = iss
    return jwt.encode(
        claims, "cis2-test-secret-cis2-test-secret-32b", algorithm="HS256", headers={"kid": kid} if kid else None
    )
