"""Inbound JWT verification (server/access/tokens.py) with real keys, a real JWKS file and a real JWKS server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from server.access.tokens import (
    MAX_TOKEN_CHARS,
    InvalidToken,
    JWKSFile,
    JWKSUrl,
    StaticKeys,
    TokenVerifier,
    TrustedIssuer,
    unverified_parts,
)

ISSUER = "https://idp.example.nhs.uk"
AUDIENCE = "https://facade.example.nhs.uk"
NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def rsa_a() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "a"}, private=True)


@pytest.fixture(scope="module")
def rsa_b() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "b"}, private=True)


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec"}, private=True)


def public_set(*keys: Any) -> KeySet:
    return KeySet.import_key_set({"keys": [k.as_dict(private=False) for k in keys]})


def jwks_document(*keys: Any) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def good_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": int(NOW) + 300,
        "iat": int(NOW) - 10,
        "nbf": int(NOW) - 10,
        "scope": "user/Patient.r",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(
    key: Any, claims: dict[str, Any] | None = None, *, alg: str = "RS256", kid: str | None = None, **header: Any
) -> str:
    head = {"alg": alg, "kid": kid if kid is not None else key.kid, "typ": "JWT", **header}
    return jwt.encode(head, claims if claims is not None else good_claims(), key)


def verifier(
    keys: Any,
    *,
    audiences: tuple[str, ...] = (AUDIENCE,),
    algorithms: tuple[str, ...] | None = None,
    leeway: float = 30.0,
    issuer: str = ISSUER,
) -> TokenVerifier:
    trusted = (
        TrustedIssuer(issuer, keys, audiences)
        if algorithms is None
        else TrustedIssuer(issuer, keys, audiences, algorithms)
    )
    return TokenVerifier([trusted], leeway=leeway, clock=lambda: NOW)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class CountingKeys:
    """A KeySource that records every call, and serves a second key set once asked to refresh."""

    def __init__(self, first: KeySet, refreshed: KeySet | None = None) -> None:
        self.first = first
        self.refreshed = refreshed if refreshed is not None else first
        self.calls: list[bool] = []

    async def keys(self, *, refresh: bool = False) -> KeySet:
        self.calls.append(refresh)
        return self.refreshed if refresh else self.first


async def refused(v: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        await v.verify(token)
    assert reason in caught.value.reason


# --- the happy paths -------------------------------------------------------------------------------


async def test_valid_rs256_token_gives_its_claims(rsa_a: RSAKey) -> None:
    claims = await verifier(StaticKeys(public_set(rsa_a))).verify(sign(rsa_a))
    assert claims["sub"] == "user-1" and claims["iss"] == ISSUER and claims["scope"] == "user/Patient.r"


async def test_valid_es256_token_is_accepted(ec_key: ECKey) -> None:
    claims = await verifier(StaticKeys(public_set(ec_key))).verify(sign(ec_key, alg="ES256"))
    assert claims["sub"] == "user-1"


async def test_issuers_lists_every_trusted_issuer(rsa_a: RSAKey) -> None:
    keys = StaticKeys(public_set(rsa_a))
    v = TokenVerifier([TrustedIssuer("one", keys, ("x",)), TrustedIssuer("two", keys, ("x",))])
    assert set(v.issuers) == {"one", "two"}


async def test_the_token_is_checked_against_its_own_issuers_keys(rsa_a: RSAKey, rsa_b: RSAKey) -> None:
    v = TokenVerifier(
        [
            TrustedIssuer("iss-a", StaticKeys(public_set(rsa_a)), (AUDIENCE,)),
            TrustedIssuer("iss-b", StaticKeys(public_set(rsa_b)), (AUDIENCE,)),
        ],
        clock=lambda: NOW,
    )
    assert (await v.verify(sign(rsa_b, good_claims(iss="iss-b"))))["iss"] == "iss-b"
    # signed by b's key but claiming to be a: a's keys do not know kid "b"
    with pytest.raises(InvalidToken):
        await v.verify(sign(rsa_b, good_claims(iss="iss-a")))


# --- time claims -------------------------------------------------------------------------------------


@pytest.mark.parametrize("exp_offset, ok", [(-31, False), (-3600, False), (-30, True), (-29, True), (1, True)])
async def test_exp_with_leeway(rsa_a: RSAKey, exp_offset: int, ok: bool) -> None:
    v = verifier(StaticKeys(public_set(rsa_a)), leeway=30)
    token = sign(rsa_a, good_claims(exp=int(NOW) + exp_offset, iat=int(NOW) - 7200, nbf=int(NOW) - 7200))
    if ok:
        assert (await v.verify(token))["exp"] == int(NOW) + exp_offset
    else:
        await refused(v, token, "expired")


@pytest.mark.parametrize("name", ["nbf", "iat"])
@pytest.mark.parametrize("offset, ok", [(31, False), (3600, False), (30, True), (29, True), (-100, True)])
async def test_nbf_and_iat_in_the_future_beyond_leeway_are_refused(
    rsa_a: RSAKey, name: str, offset: int, ok: bool
) -> None:
    v = verifier(StaticKeys(public_set(rsa_a)), leeway=30)
    token = sign(rsa_a, good_claims(**{name: int(NOW) + offset}))
    if ok:
        assert (await v.verify(token))[name] == int(NOW) + offset
    else:
        await refused(v, token, f"{name} in the future")


@pytest.mark.parametrize("name", ["nbf", "iat"])
@pytest.mark.parametrize("value", ["1700000000", True, [1], {"t": 1}])
async def test_nbf_and_iat_that_are_not_numbers_are_refused(rsa_a: RSAKey, name: str, value: Any) -> None:
    await refused(
        verifier(StaticKeys(public_set(rsa_a))), sign(rsa_a, good_claims(**{name: value})), f"{name} not a number"
    )


async def test_nbf_and_iat_are_optional(rsa_a: RSAKey) -> None:
    claims = good_claims()
    del claims["nbf"], claims["iat"]
    assert (await verifier(StaticKeys(public_set(rsa_a))).verify(sign(rsa_a, claims)))["sub"] == "user-1"


@pytest.mark.parametrize("exp", [None, "1700000300", True, [1700000300]])
async def test_exp_missing_or_not_a_number_is_refused(rsa_a: RSAKey, exp: Any) -> None:
    claims = good_claims(exp=exp)  # None leaves it out
    await refused(verifier(StaticKeys(public_set(rsa_a))), sign(rsa_a, claims), "exp missing")


# --- audience, issuer, subject -------------------------------------------------------------------------


async def test_wrong_audience_is_refused(rsa_a: RSAKey) -> None:
    await refused(
        verifier(StaticKeys(public_set(rsa_a))), sign(rsa_a, good_claims(aud="https://other.example")), "audience"
    )


async def test_audience_list_containing_ours_is_accepted(rsa_a: RSAKey) -> None:
    token = sign(rsa_a, good_claims(aud=["https://other.example", AUDIENCE]))
    assert (await verifier(StaticKeys(public_set(rsa_a))).verify(token))["aud"][1] == AUDIENCE


@pytest.mark.parametrize(
    "aud", [["https://other.example", "https://third.example"], [], None, 5, {"a": AUDIENCE}, [[AUDIENCE]]]
)
async def test_audience_lists_without_ours_or_missing_are_refused(rsa_a: RSAKey, aud: Any) -> None:
    claims = good_claims(aud=aud)  # None leaves it out
    await refused(verifier(StaticKeys(public_set(rsa_a))), sign(rsa_a, claims), "audience")


async def test_any_of_several_accepted_audiences_will_do(rsa_a: RSAKey) -> None:
    v = verifier(StaticKeys(public_set(rsa_a)), audiences=("urn:one", AUDIENCE))
    assert (await v.verify(sign(rsa_a, good_claims(aud="urn:one"))))["aud"] == "urn:one"


@pytest.mark.parametrize("iss", ["https://evil.example", ISSUER + "/", None, 5, [ISSUER]])
async def test_untrusted_or_missing_issuer_is_refused_before_any_key_is_fetched(rsa_a: RSAKey, iss: Any) -> None:
    keys = CountingKeys(public_set(rsa_a))
    claims = good_claims()
    if iss is None:
        del claims["iss"]
    else:
        claims["iss"] = iss
    await refused(verifier(keys), sign(rsa_a, claims), "issuer not trusted")
    assert keys.calls == []


@pytest.mark.parametrize("sub", [None, "", 5, ["user-1"]])
async def test_missing_or_empty_sub_is_refused(rsa_a: RSAKey, sub: Any) -> None:
    claims = good_claims()
    if sub is None:
        del claims["sub"]
    else:
        claims["sub"] = sub
    await refused(verifier(StaticKeys(public_set(rsa_a))), sign(rsa_a, claims), "sub missing")


# --- algorithms and shapes ------------------------------------------------------------------------------


def unsigned_token(claims: dict[str, Any], signature: str = "", **header: Any) -> str:
    head = {"alg": "none", "typ": "JWT", **header}
    return f"{b64url(orjson.dumps(head))}.{b64url(orjson.dumps(claims))}.{signature}"


async def test_alg_none_without_signature_is_refused_before_any_key_is_fetched(rsa_a: RSAKey) -> None:
    keys = CountingKeys(public_set(rsa_a))
    await refused(verifier(keys), unsigned_token(good_claims()), "three parts")
    assert keys.calls == []


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_with_a_made_up_signature_is_refused(rsa_a: RSAKey, alg: str) -> None:
    keys = CountingKeys(public_set(rsa_a))
    await refused(verifier(keys), unsigned_token(good_claims(), "c2ln", alg=alg), "not allowed")
    assert keys.calls == []


def hs256_with_public_pem(key: RSAKey, claims: dict[str, Any], kid: str | None = None) -> str:
    """The HS/RS confusion: an HMAC over the token keyed with the RSA public key's PEM bytes."""
    head: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid:
        head["kid"] = kid
    signing_input = f"{b64url(orjson.dumps(head))}.{b64url(orjson.dumps(claims))}"
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


async def test_hs256_signed_with_the_public_key_pem_is_refused(rsa_a: RSAKey) -> None:
    keys = CountingKeys(public_set(rsa_a))
    token = hs256_with_public_pem(rsa_a, good_claims(), kid="a")
    await refused(verifier(keys), token, "not allowed")
    assert keys.calls == []


async def test_hs256_with_the_public_key_pem_fails_even_if_hs256_were_listed(rsa_a: RSAKey) -> None:
    """Defence in depth: the RSA key in the set cannot serve as an HMAC secret."""
    token = hs256_with_public_pem(rsa_a, good_claims(), kid="a")
    with pytest.raises(InvalidToken):
        await verifier(StaticKeys(public_set(rsa_a)), algorithms=("RS256", "HS256")).verify(token)


async def test_rs256_not_on_the_allow_list_is_refused(rsa_a: RSAKey) -> None:
    keys = CountingKeys(public_set(rsa_a))
    await refused(verifier(keys, algorithms=("ES256", "PS256")), sign(rsa_a), "'RS256' not allowed")
    assert keys.calls == []


async def test_header_alg_naming_another_family_than_the_key_is_refused(rsa_a: RSAKey, ec_key: ECKey) -> None:
    """An ES256 header on a token whose kid is an RSA key: the key cannot verify it."""
    token = sign(ec_key, alg="ES256", kid="a")
    with pytest.raises(InvalidToken):
        await verifier(StaticKeys(public_set(rsa_a))).verify(token)


async def test_signature_by_another_key_with_a_known_kid_is_refused_without_a_refresh(
    rsa_a: RSAKey, rsa_b: RSAKey
) -> None:
    keys = CountingKeys(public_set(rsa_a))
    await refused(verifier(keys), sign(rsa_b, kid="a"), "signature")
    assert keys.calls == [False]


async def test_tampered_claims_are_refused(rsa_a: RSAKey) -> None:
    head, _, sig = sign(rsa_a).split(".")
    forged = f"{head}.{b64url(orjson.dumps(good_claims(sub='admin')))}.{sig}"
    await refused(verifier(StaticKeys(public_set(rsa_a))), forged, "signature")


@pytest.mark.parametrize("token", ["a.b.c.d.e", "a.b", "abc", "", "a.b.c.d", "..."])
async def test_tokens_of_the_wrong_number_of_parts_are_refused(rsa_a: RSAKey, token: str) -> None:
    keys = CountingKeys(public_set(rsa_a))
    with pytest.raises(InvalidToken):
        await verifier(keys).verify(token)
    assert keys.calls == []


async def test_jwe_shaped_token_is_refused_as_not_a_signed_jwt(rsa_a: RSAKey) -> None:
    head = b64url(orjson.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "a"}))
    token = ".".join([head, b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"ciphertext"), b64url(b"tag" * 5)])
    await refused(verifier(StaticKeys(public_set(rsa_a))), token, "three parts")


async def test_too_long_token_is_refused_before_parsing(rsa_a: RSAKey) -> None:
    keys = CountingKeys(public_set(rsa_a))
    long_token = sign(rsa_a, good_claims(padding="x" * MAX_TOKEN_CHARS))
    assert len(long_token) > MAX_TOKEN_CHARS
    await refused(verifier(keys), long_token, "too long")
    assert keys.calls == []


async def test_a_token_just_under_the_limit_is_verified(rsa_a: RSAKey) -> None:
    base = sign(rsa_a, good_claims(padding=""))
    pad = (MAX_TOKEN_CHARS - len(base) - 8) * 3 // 4
    token = sign(rsa_a, good_claims(padding="x" * pad))
    assert len(token) <= MAX_TOKEN_CHARS
    assert (await verifier(StaticKeys(public_set(rsa_a))).verify(token))["padding"] == "x" * pad


@pytest.mark.parametrize("head, body", [("!!!", None), (None, "not-base64-json"), ("W10", None), (None, "W10")])
async def test_segments_that_are_not_json_objects_are_refused(head: str | None, body: str | None) -> None:
    h = head or b64url(orjson.dumps({"alg": "RS256"}))
    c = body or b64url(orjson.dumps(good_claims()))
    with pytest.raises(InvalidToken):
        unverified_parts(f"{h}.{c}.sig")


# --- unknown kid: one refresh of the key source ------------------------------------------------------------


async def test_unknown_kid_refreshes_once_and_is_accepted_from_the_refreshed_set(rsa_a: RSAKey, rsa_b: RSAKey) -> None:
    keys = CountingKeys(public_set(rsa_a), public_set(rsa_a, rsa_b))
    claims = await verifier(keys).verify(sign(rsa_b))
    assert claims["sub"] == "user-1"
    assert keys.calls == [False, True]


async def test_unknown_kid_still_unknown_after_the_refresh_is_refused_after_exactly_one_refresh(
    rsa_a: RSAKey, rsa_b: RSAKey
) -> None:
    keys = CountingKeys(public_set(rsa_a))
    await refused(verifier(keys), sign(rsa_b), "unknown kid")
    assert keys.calls == [False, True]


async def test_known_kid_needs_no_refresh(rsa_a: RSAKey) -> None:
    keys = CountingKeys(public_set(rsa_a))
    await verifier(keys).verify(sign(rsa_a))
    assert keys.calls == [False]


# --- JWKS file ------------------------------------------------------------------------------------------


def write_jwks(path: Path, document: dict[str, Any], mtime_ns: int) -> None:
    path.write_bytes(orjson.dumps(document))
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_jwks_file_is_re_read_on_refresh_when_it_changed(tmp_path: Path, rsa_a: RSAKey, rsa_b: RSAKey) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwks_document(rsa_a), 1_000_000_000_000_000_000)
    v = verifier(JWKSFile(path))
    assert (await v.verify(sign(rsa_a)))["sub"] == "user-1"
    await refused(v, sign(rsa_b), "unknown kid")
    write_jwks(path, jwks_document(rsa_a, rsa_b), 1_000_000_010_000_000_000)
    assert (await v.verify(sign(rsa_b)))["sub"] == "user-1"


async def test_jwks_file_with_an_unchanged_mtime_is_not_re_read(tmp_path: Path, rsa_a: RSAKey, rsa_b: RSAKey) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwks_document(rsa_a), 1_000_000_000_000_000_000)
    source = JWKSFile(path)
    write_jwks(path, jwks_document(rsa_b), 1_000_000_000_000_000_000)
    keys = await source.keys(refresh=True)
    assert [k.kid for k in keys.keys] == ["a"]


async def test_jwks_file_is_not_re_read_without_a_refresh(tmp_path: Path, rsa_a: RSAKey, rsa_b: RSAKey) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwks_document(rsa_a), 1_000_000_000_000_000_000)
    source = JWKSFile(path)
    write_jwks(path, jwks_document(rsa_b), 1_000_000_010_000_000_000)
    assert [k.kid for k in (await source.keys()).keys] == ["a"]
    assert [k.kid for k in (await source.keys(refresh=True)).keys] == ["b"]


@pytest.mark.parametrize("damage", ["delete", "truncate", "not-a-jwks"])
async def test_jwks_file_that_cannot_be_re_read_keeps_the_last_keys(tmp_path: Path, rsa_a: RSAKey, damage: str) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwks_document(rsa_a), 1_000_000_000_000_000_000)
    source = JWKSFile(path)
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(b'{"keys": [' if damage == "truncate" else b'{"keys": "none"}')
        os.utime(path, ns=(1_000_000_010_000_000_000,) * 2)
    assert [k.kid for k in (await source.keys(refresh=True)).keys] == ["a"]
    assert (await verifier(source).verify(sign(rsa_a)))["sub"] == "user-1"


@pytest.mark.parametrize("document", [b"[]", b'{"keys": {}}', b"not json"])
def test_jwks_file_that_is_not_a_jwks_stops_start_up(tmp_path: Path, document: bytes) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(document)
    with pytest.raises(ValueError):
        JWKSFile(path)


async def test_jwks_file_re_read_as_an_unusable_key_set_keeps_the_last_keys(
    tmp_path: Path, rsa_a: RSAKey, rsa_b: RSAKey
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwks_document(rsa_a), 1_000_000_000_000_000_000)
    v = verifier(JWKSFile(path))
    write_jwks(path, {"keys": [{"kty": "RSA", "kid": "x"}]}, 1_000_000_010_000_000_000)
    with pytest.raises(InvalidToken):
        await v.verify(sign(rsa_b))  # unknown kid -> refresh -> the unusable file


# --- private members in a JWKS ------------------------------------------------------------------------------


async def test_jwks_with_private_members_holds_no_private_key(tmp_path: Path, rsa_a: RSAKey, rsa_b: RSAKey) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, {"keys": [rsa_a.as_dict(private=True), rsa_b.as_dict(private=False)]}, 1_000_000_000_000_000_000)
    keys = await JWKSFile(path).keys()
    for key in keys.keys:
        assert "d" not in key.as_dict(private=False)
        assert not key.is_private
    assert (await verifier(JWKSFile(path)).verify(sign(rsa_b)))["sub"] == "user-1"


async def test_jwks_entry_with_private_members_is_not_trusted(tmp_path: Path, rsa_a: RSAKey, rsa_b: RSAKey) -> None:
    """A JWKS that publishes a private key is compromised: its key is left out, not trimmed."""
    path = tmp_path / "jwks.json"
    write_jwks(path, {"keys": [rsa_a.as_dict(private=True), rsa_b.as_dict(private=False)]}, 1_000_000_000_000_000_000)
    checker = verifier(JWKSFile(path))
    with pytest.raises(InvalidToken):
        await checker.verify(sign(rsa_a))
    assert (await checker.verify(sign(rsa_b)))["sub"] == "user-1"


# --- JWKS URL, from a real HTTP server on loopback ------------------------------------------------------------


class JWKSServer:
    def __init__(self) -> None:
        self.document: Any = {"keys": []}
        self.status = 200
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        return web.Response(body=orjson.dumps(self.document), content_type="application/json")


class Clock:
    def __init__(self, t: float = 5000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def jwks_server() -> AsyncIterator[tuple[JWKSServer, str]]:
    state = JWKSServer()
    app = web.Application()
    app.router.add_get("/jwks", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("/jwks"))
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_jwks_url_is_fetched_once_and_cached(
    jwks_server: tuple[JWKSServer, str], session: aiohttp.ClientSession, rsa_a: RSAKey
) -> None:
    state, url = jwks_server
    state.document = jwks_document(rsa_a)
    v = verifier(JWKSUrl(session, url, clock=Clock()))
    for _ in range(3):
        assert (await v.verify(sign(rsa_a)))["sub"] == "user-1"
    assert state.hits == 1


async def test_jwks_url_refresh_respects_the_minimum_interval(
    jwks_server: tuple[JWKSServer, str], session: aiohttp.ClientSession, rsa_a: RSAKey, rsa_b: RSAKey
) -> None:
    state, url = jwks_server
    state.document = jwks_document(rsa_a)
    clock = Clock()
    v = verifier(JWKSUrl(session, url, min_refresh_seconds=30, clock=clock))
    assert (await v.verify(sign(rsa_a)))["sub"] == "user-1"
    assert state.hits == 1
    # the IdP rotates in key b
    state.document = jwks_document(rsa_a, rsa_b)
    clock.t += 29
    for _ in range(5):  # a flood of unknown kids within the interval: no refetch
        await refused(v, sign(rsa_b), "unknown kid")
    assert state.hits == 1
    clock.t += 1
    assert (await v.verify(sign(rsa_b)))["sub"] == "user-1"
    assert state.hits == 2
    await refused(v, sign(RSAKey.generate_key(2048, parameters={"kid": "c"}, private=True)), "unknown kid")
    assert state.hits == 2  # just refreshed


async def test_jwks_url_keys_without_refresh_never_refetch(
    jwks_server: tuple[JWKSServer, str], session: aiohttp.ClientSession, rsa_a: RSAKey
) -> None:
    state, url = jwks_server
    state.document = jwks_document(rsa_a)
    clock = Clock()
    source = JWKSUrl(session, url, min_refresh_seconds=30, clock=clock)
    await source.keys()
    clock.t += 10_000
    await source.keys()
    assert state.hits == 1
    await source.keys(refresh=True)
    assert state.hits == 2


async def test_jwks_url_failure_is_an_invalid_token_and_a_later_success_recovers(
    jwks_server: tuple[JWKSServer, str], session: aiohttp.ClientSession, rsa_a: RSAKey
) -> None:
    state, url = jwks_server
    state.document = jwks_document(rsa_a)
    state.status = 503
    clock = Clock()
    v = verifier(JWKSUrl(session, url, min_refresh_seconds=30, clock=clock))
    await refused(v, sign(rsa_a), "could not be fetched")
    state.status = 200
    clock.t += 30
    assert (await v.verify(sign(rsa_a)))["sub"] == "user-1"
    assert state.hits == 2


async def test_jwks_url_failed_first_fetch_is_not_retried_within_the_minimum_interval(
    jwks_server: tuple[JWKSServer, str], session: aiohttp.ClientSession, rsa_a: RSAKey
) -> None:
    state, url = jwks_server
    state.status = 503
    v = verifier(JWKSUrl(session, url, min_refresh_seconds=30, clock=Clock()))
    for _ in range(5):
        await refused(v, sign(rsa_a), "could not be fetched")
    assert state.hits == 1


async def test_jwks_url_failed_refresh_keeps_the_cached_keys(
    jwks_server: tuple[JWKSServer, str], session: aiohttp.ClientSession, rsa_a: RSAKey, rsa_b: RSAKey
) -> None:
    state, url = jwks_server
    state.document = jwks_document(rsa_a)
    clock = Clock()
    v = verifier(JWKSUrl(session, url, min_refresh_seconds=30, clock=clock))
    await v.verify(sign(rsa_a))
    state.status = 500
    clock.t += 60
    await refused(v, sign(rsa_b), "unknown kid")
    assert state.hits == 2
    assert (await v.verify(sign(rsa_a)))["sub"] == "user-1"


async def test_jwks_url_that_is_not_json_is_an_invalid_token(
    jwks_server: tuple[JWKSServer, str], session: aiohttp.ClientSession, rsa_a: RSAKey
) -> None:
    state, url = jwks_server
    state.document = ["not", "a", "jwks"]
    await refused(verifier(JWKSUrl(session, url, clock=Clock())), sign(rsa_a), "could not be fetched")


async def test_jwks_url_unreachable_is_an_invalid_token(session: aiohttp.ClientSession, rsa_a: RSAKey) -> None:
    from tests.support.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/jwks"
    await refused(verifier(JWKSUrl(session, url, timeout=2.0, clock=Clock())), sign(rsa_a), "could not be fetched")


async def test_jwks_url_with_no_usable_key_is_an_invalid_token(
    jwks_server: tuple[JWKSServer, str], session: aiohttp.ClientSession, rsa_a: RSAKey
) -> None:
    state, url = jwks_server
    state.document = {"keys": []}
    with pytest.raises(InvalidToken):
        await verifier(JWKSUrl(session, url, clock=Clock())).verify(sign(rsa_a))


async def test_a_token_living_longer_than_allowed_is_refused(rsa_a: RSAKey) -> None:
    checker = TokenVerifier(
        [TrustedIssuer(ISSUER, StaticKeys(public_set(rsa_a)), (AUDIENCE,))], max_lifetime=3600, clock=lambda: NOW
    )
    one_hour = sign(rsa_a, good_claims(iat=int(NOW), exp=int(NOW) + 3600))
    assert (await checker.verify(one_hour))["sub"] == "user-1"
    a_century = sign(rsa_a, good_claims(iat=int(NOW), exp=int(NOW) + 100 * 365 * 86400))
    with pytest.raises(InvalidToken, match="lifetime"):
        await checker.verify(a_century)
    without_iat = sign(rsa_a, good_claims(iat=None, exp=int(NOW) + 7200))
    with pytest.raises(InvalidToken, match="lifetime"):
        await checker.verify(without_iat)
