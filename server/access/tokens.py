"""Inbound bearer tokens: verify a JWT access token against the issuers this façade trusts.

Checks, in order: size and compact-JWS shape (a JWE or `alg: none` token never gets to
a key), a trusted `iss`, an algorithm on the allow-list (asymmetric only, so an HS256
token signed with a public key — the HS/RS confusion — cannot verify), the signature
against that issuer's keys (its JWKS re-read once on an unknown `kid`), then `exp`
(required), `nbf` and `iat` with a small leeway, and `aud`.

Every failure is one `InvalidToken`, whose reason is for the audit trail and logs
only: the client gets a bare `invalid_token` (nothing that helps an attacker).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

log = logging.getLogger("facade.access")

MAX_TOKEN_CHARS = 16_384
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class InvalidToken(Exception):
    """A bearer token that does not authenticate anyone. `reason` is never shown to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySource(Protocol):
    """Where an issuer's public keys come from; `refresh` asks for a re-read (unknown kid)."""

    async def keys(self, *, refresh: bool = False) -> KeySet: ...


class StaticKeys:
    """Keys known at start (the development issuer's own key)."""

    def __init__(self, key_set: KeySet) -> None:
        self._keys = key_set

    async def keys(self, *, refresh: bool = False) -> KeySet:
        return self._keys


PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


def _key_set(document: Any) -> KeySet:
    """The usable public keys of a JWKS document, or ValueError. An entry carrying private
    members (`d`) is left out, not trimmed: a JWKS that publishes a private key is
    compromised, and trusting its public half would accept the attacker's tokens. Symmetric
    (`oct`) keys are left out too: only asymmetric algorithms are accepted."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS is a JSON object with a 'keys' list")
    public = [k for k in document["keys"] if isinstance(k, dict) and "d" not in k and k.get("kty") in PUBLIC_KEY_TYPES]
    if not public:
        raise ValueError("the JWKS holds no usable public key")
    try:
        return KeySet.import_key_set({"keys": public})
    except (JoseError, KeyError, TypeError) as exc:
        raise ValueError(f"the JWKS could not be read ({type(exc).__name__})") from None


class JWKSFile:
    """A JWKS file, re-read when it changed on disk and a refresh is asked for."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: float | None = None
        self._keys = KeySet([])
        self._load()  # a bad file at start-up stops the façade (ValueError, OSError)

    def _load(self) -> None:
        mtime = self._path.stat().st_mtime
        if mtime != self._mtime:
            self._keys = _key_set(orjson.loads(self._path.read_bytes()))
            self._mtime = mtime

    async def keys(self, *, refresh: bool = False) -> KeySet:
        if refresh:
            try:
                self._load()
            except (OSError, ValueError) as exc:
                log.warning("JWKS file could not be re-read: %s", type(exc).__name__)
        return self._keys


class JWKSUrl:
    """A JWKS URL, fetched on first use and cached; an unknown kid refetches it, at most once
    per `min_refresh_seconds` (so a flood of made-up kids cannot hammer the IdP)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        min_refresh_seconds: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = url
        self._min_refresh = min_refresh_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    def _due(self, refresh: bool) -> bool:
        """A fetch is due when there are no keys or a refresh is asked for, and the last
        attempt (successful or not) is at least `min_refresh_seconds` old: while the IdP is
        down, a flood of tokens naming it cannot turn into a flood of fetches."""
        wanted = self._keys is None or refresh
        return wanted and self._clock() - self._fetched_at >= self._min_refresh

    async def keys(self, *, refresh: bool = False) -> KeySet:
        if self._due(refresh):
            async with self._lock:
                if self._due(refresh):
                    await self._fetch()
        if self._keys is None:
            raise InvalidToken("the issuer's JWKS could not be fetched")
        return self._keys

    async def _fetch(self) -> None:
        self._fetched_at = self._clock()
        try:
            async with self._session.get(self._url, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                self._keys = _key_set(orjson.loads(await resp.read()))
        except (TimeoutError, aiohttp.ClientError, ValueError, orjson.JSONDecodeError) as exc:
            log.warning("JWKS fetch failed: %s", type(exc).__name__)


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    keys: KeySource
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS


def _segment(text: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidToken("a JWT segment is not base64url JSON") from None


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) before verification: only to pick the issuer and keys."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("token too long")
    parts = token.split(".")
    if len(parts) != 3 or not parts[2]:
        raise InvalidToken("not a signed compact JWT (three parts, a signature)")
    header, claims = _segment(parts[0]), _segment(parts[1])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("JWT header and claims must be JSON objects")
    return header, claims


class TokenVerifier:
    """Verifies access tokens from any of the trusted issuers."""

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        *,
        leeway: float = 30.0,
        max_lifetime: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._clock = clock

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(self._issuers)

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims, or InvalidToken."""
        header, unverified = unverified_parts(token)
        issuer = unverified.get("iss")
        trusted = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if trusted is None:
            raise InvalidToken("issuer not trusted")
        alg = header.get("alg")
        if alg not in trusted.algorithms:
            raise InvalidToken(f"algorithm {str(alg)[:20]!r} not allowed")
        claims = await self._verified_claims(token, trusted, alg)
        self._check_claims(claims, trusted)
        return claims

    async def _verified_claims(self, token: str, trusted: TrustedIssuer, alg: str) -> dict[str, Any]:
        for refresh in (False, True):
            keys = await trusted.keys.keys(refresh=refresh)
            try:
                return dict(jwt.decode(token, keys, algorithms=[alg]).claims)
            except InvalidKeyIdError:
                if refresh:
                    raise InvalidToken("unknown kid") from None
            except JoseError as exc:
                raise InvalidToken(f"signature or format: {exc.error}") from None
            except (ValueError, TypeError):
                raise InvalidToken("malformed token") from None
        raise InvalidToken("unknown kid")  # pragma: no cover - the loop returns or raises

    def _check_claims(self, claims: dict[str, Any], trusted: TrustedIssuer) -> None:
        now = self._clock()
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise InvalidToken("exp missing")
        if now > exp + self._leeway:
            raise InvalidToken("expired")
        # A bearer token is only as safe as its lifetime: one valid for years is a password.
        issued = claims.get("iat")
        start = issued if isinstance(issued, (int, float)) and not isinstance(issued, bool) else now
        if exp - start > self._max_lifetime + self._leeway:
            raise InvalidToken("lifetime longer than allowed")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InvalidToken(f"{name} not a number")
            if value > now + self._leeway:
                raise InvalidToken(f"{name} in the future")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(a in trusted.audiences for a in audiences if isinstance(a, str)):
            raise InvalidToken("audience not this façade")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("sub missing")
