"""Access wiring (server/access/wiring.py): when the development issuer is trusted, issuer config errors,
relationship switch; and the development issuer itself (server/access/dev_issuer.py)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from server.access import dev_issuer
from server.access.control import AccessControl
from server.access.dev_issuer import DEV_ISSUER, DEV_KID, issue_token, load_or_create_key, public_key_set
from server.access.tokens import InvalidToken, JWKSFile, JWKSUrl, StaticKeys, TokenVerifier, TrustedIssuer
from server.access.wiring import (
    AccessConfigError,
    build_access,
    dev_issuer_trusted,
    nhs_environment,
    trusted_issuers,
)
from server.settings import Settings
from tests.support.sources import nhs_urls

SANDBOX = "https://sandbox.api.service.nhs.uk/personal-demographics/FHIR/R4"
INTEGRATION = "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4"
PRODUCTION = "https://api.service.nhs.uk/personal-demographics/FHIR/R4"
LOOPBACK = "http://127.0.0.1:9100/personal-demographics/FHIR/R4"


@pytest.fixture(scope="module")
def shared_key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dev-issuer") / "dev-issuer.pem"
    load_or_create_key(path)
    return path


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def settings(**values: Any) -> Settings:
    return Settings(**values)


def with_urls(**values: Any) -> tuple[Settings, list[str | None]]:
    """Settings and the NHS URLs they configure: what the wiring functions take."""
    made = Settings(**values)
    return made, nhs_urls(made)


# --- environment of the settings ---------------------------------------------------------------------------


def test_defaults_are_the_emulator() -> None:
    assert nhs_environment(*with_urls()) == "emulator"


@pytest.mark.parametrize(
    "field", ["pds_base_url", "cpt_base_url", "bars_base_url", "ers_base_url", "gpconnect_base_url", "token_url"]
)
def test_any_one_production_url_makes_the_facade_production(field: str) -> None:
    assert nhs_environment(*with_urls(**{field: "https://api.service.nhs.uk/x"})) == "production"
    assert nhs_environment(*with_urls(**{field: "https://sandbox.api.service.nhs.uk/x"})) == "sandbox"


def test_the_facades_own_base_url_does_not_count() -> None:
    assert nhs_environment(*with_urls(base_url="https://facade.hospital.nhs.uk")) == "emulator"


# --- dev_issuer_trusted ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, url, trusted",
    [
        ("auto", None, True),
        ("auto", LOOPBACK, True),
        ("auto", SANDBOX, False),
        ("auto", INTEGRATION, False),
        ("auto", PRODUCTION, False),
        ("on", None, True),
        ("on", SANDBOX, True),
        ("on", INTEGRATION, True),
        ("off", None, False),
        ("off", SANDBOX, False),
        ("off", PRODUCTION, False),
    ],
)
def test_dev_issuer_trusted(mode: str, url: str | None, trusted: bool) -> None:
    assert dev_issuer_trusted(*with_urls(dev_issuer=mode, pds_base_url=url)) is trusted


def test_dev_issuer_on_against_production_is_a_config_error() -> None:
    with pytest.raises(AccessConfigError, match="production"):
        dev_issuer_trusted(*with_urls(dev_issuer="on", pds_base_url=PRODUCTION))


def test_dev_issuer_on_with_one_production_url_among_sandbox_ones_is_a_config_error() -> None:
    with pytest.raises(AccessConfigError):
        dev_issuer_trusted(
            *with_urls(
                dev_issuer="on",
                pds_base_url=SANDBOX,
                ers_base_url=INTEGRATION,
                token_url="https://api.service.nhs.uk/oauth2/token",
            )
        )


# --- trusted_issuers --------------------------------------------------------------------------------------


async def test_emulator_trusts_only_the_dev_issuer_with_rs256(
    session: aiohttp.ClientSession, shared_key_path: Path
) -> None:
    (issuer,) = trusted_issuers(*with_urls(dev_issuer_key_path=shared_key_path), session)
    assert issuer.issuer == DEV_ISSUER
    assert issuer.algorithms == ("RS256",)
    assert issuer.audiences == ("http://127.0.0.1:8080",)
    assert isinstance(issuer.keys, StaticKeys)


async def test_the_dev_issuer_trusted_by_wiring_verifies_a_minted_token(
    session: aiohttp.ClientSession, shared_key_path: Path
) -> None:
    issuers = trusted_issuers(*with_urls(dev_issuer_key_path=shared_key_path, auth_audience=["urn:test"]), session)
    token = issue_token(
        load_or_create_key(shared_key_path), audience="urn:test", scope="user/Patient.r", roles=["clerk"]
    )
    claims = await TokenVerifier(issuers).verify(token)
    assert claims["iss"] == DEV_ISSUER and claims["roles"] == ["clerk"]
    with pytest.raises(InvalidToken):
        await TokenVerifier(issuers).verify(
            issue_token(load_or_create_key(shared_key_path), audience="urn:other", scope="user/Patient.r")
        )


async def test_a_token_signed_by_another_key_as_the_dev_issuer_is_refused(
    session: aiohttp.ClientSession, shared_key_path: Path
) -> None:
    issuers = trusted_issuers(*with_urls(dev_issuer_key_path=shared_key_path, auth_audience=["urn:test"]), session)
    impostor = RSAKey.generate_key(2048, parameters={"kid": DEV_KID}, private=True)
    with pytest.raises(InvalidToken):
        await TokenVerifier(issuers).verify(issue_token(impostor, audience="urn:test", scope="user/*.cruds"))


async def test_identity_provider_with_a_jwks_file(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "idp"}, private=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    (issuer,) = trusted_issuers(
        *with_urls(
            auth_issuer="https://idp.example",
            auth_jwks_file=jwks,
            pds_base_url=PRODUCTION,
            auth_audience=["https://facade.example"],
            auth_algorithms=["RS256", "HS256", "none", "HS512", "ES256"],
        ),
        session,
    )
    assert issuer.issuer == "https://idp.example"
    assert isinstance(issuer.keys, JWKSFile)
    assert issuer.algorithms == ("RS256", "ES256")
    assert issuer.audiences == ("https://facade.example",)
    token = jwt.encode(
        {"alg": "RS256", "kid": "idp"},
        {"iss": "https://idp.example", "sub": "u", "exp": int(time.time()) + 600, "aud": "https://facade.example"},
        key,
    )
    assert (await TokenVerifier([issuer]).verify(token))["sub"] == "u"


async def test_identity_provider_with_a_jwks_url(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    (issuer,) = trusted_issuers(
        *with_urls(
            auth_issuer="https://idp.example", pds_base_url=PRODUCTION, auth_jwks_url="https://idp.example/jwks"
        ),
        session,
    )
    assert isinstance(issuer.keys, JWKSUrl)


async def test_identity_provider_and_dev_issuer_side_by_side_in_the_emulator(
    tmp_path: Path, session: aiohttp.ClientSession, shared_key_path: Path
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [RSAKey.generate_key(2048, private=True).as_dict(private=False)]}))
    issuers = trusted_issuers(
        *with_urls(auth_issuer="https://idp.example", auth_jwks_file=jwks, dev_issuer_key_path=shared_key_path), session
    )
    assert [i.issuer for i in issuers] == ["https://idp.example", DEV_ISSUER]


async def test_production_with_auto_trusts_only_the_idp_and_never_creates_a_dev_key(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [RSAKey.generate_key(2048, private=True).as_dict(private=False)]}))
    key_path = tmp_path / "never" / "dev-issuer.pem"
    issuers = trusted_issuers(
        *with_urls(
            auth_issuer="https://idp.example",
            auth_jwks_file=jwks,
            pds_base_url=PRODUCTION,
            dev_issuer_key_path=key_path,
        ),
        session,
    )
    assert [i.issuer for i in issuers] == ["https://idp.example"]
    assert not key_path.exists()


async def test_auth_issuer_without_a_jwks_is_a_config_error(
    session: aiohttp.ClientSession, shared_key_path: Path
) -> None:
    with pytest.raises(AccessConfigError, match="FACADE_AUTH_JWKS_URL or FACADE_AUTH_JWKS_FILE"):
        trusted_issuers(*with_urls(auth_issuer="https://idp.example", dev_issuer_key_path=shared_key_path), session)


@pytest.mark.parametrize(
    "values",
    [
        {"pds_base_url": PRODUCTION},
        {"pds_base_url": SANDBOX},
        {"dev_issuer": "off"},
        {"dev_issuer": "off", "pds_base_url": INTEGRATION},
    ],
)
async def test_no_issuer_at_all_is_a_config_error(session: aiohttp.ClientSession, values: dict[str, Any]) -> None:
    with pytest.raises(AccessConfigError, match="No token issuer"):
        trusted_issuers(*with_urls(**values), session)


async def test_dev_issuer_on_against_production_stops_trusted_issuers_even_with_an_idp(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [RSAKey.generate_key(2048, private=True).as_dict(private=False)]}))
    with pytest.raises(AccessConfigError, match="FACADE_DEV_ISSUER=on"):
        trusted_issuers(
            *with_urls(
                auth_issuer="https://idp.example",
                auth_jwks_file=jwks,
                dev_issuer="on",
                token_url="https://api.service.nhs.uk/oauth2/token",
            ),
            session,
        )


# --- build_access ---------------------------------------------------------------------------------------------


class NoDirectory:
    async def registered(self, patient: str) -> bool:
        return False

    async def nhs_number(self, patient: str) -> str | None:
        return None


async def test_relationship_not_required_is_refused_against_production(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [RSAKey.generate_key(2048, private=True).as_dict(private=False)]}))
    with pytest.raises(AccessConfigError, match="FACADE_RELATIONSHIP_REQUIRED"):
        build_access(
            *with_urls(
                auth_issuer="https://idp.example",
                auth_jwks_file=jwks,
                pds_base_url=PRODUCTION,
                relationship_required=False,
            ),
            session,
            NoDirectory(),
            trail=None,
        )


async def test_relationship_not_required_is_allowed_in_the_sandbox(
    session: aiohttp.ClientSession, shared_key_path: Path
) -> None:
    access = build_access(
        *with_urls(
            dev_issuer="on", pds_base_url=SANDBOX, dev_issuer_key_path=shared_key_path, relationship_required=False
        ),
        session,
        NoDirectory(),
        trail=None,
    )
    assert isinstance(access, AccessControl)
    assert access.policy.relationship_required is False
    assert access.verifier.issuers == (DEV_ISSUER,)
    assert access.observer == "http://127.0.0.1:8080"


async def test_build_access_reads_a_configured_role_table(
    tmp_path: Path, session: aiohttp.ClientSession, shared_key_path: Path
) -> None:
    policy_file = tmp_path / "roles.yaml"
    policy_file.write_text(
        "roles:\n  reader:\n    fhir: {Patient: r}\nclinical_types: []\nclinical_purposes: []\n", encoding="utf-8"
    )
    access = build_access(
        *with_urls(access_policy=policy_file, dev_issuer_key_path=shared_key_path), session, NoDirectory(), trail=None
    )
    assert set(access.table.roles) == {"reader"}
    assert access.policy.relationship_required is True


# --- the development issuer's key and tokens ------------------------------------------------------------------


def test_key_is_created_once_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "config" / "nhs-fhir-facade" / "dev-issuer.pem"
    first = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    pem = path.read_bytes()
    assert b"PRIVATE KEY" in pem
    second = load_or_create_key(path)
    assert path.read_bytes() == pem
    assert second.as_dict(private=False)["n"] == first.as_dict(private=False)["n"]
    assert first.kid == second.kid == DEV_KID


def test_an_existing_key_file_is_used_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "dev-issuer.pem"
    mine = RSAKey.generate_key(2048, private=True)
    path.write_bytes(mine.as_pem(private=True))
    path.chmod(0o600)
    loaded = load_or_create_key(path)
    assert loaded.as_dict(private=False)["n"] == mine.as_dict(private=False)["n"]
    assert loaded.kid == DEV_KID


def test_default_key_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACADE_DEV_ISSUER_KEY_PATH", str(tmp_path / "explicit.pem"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert dev_issuer.default_key_path() == tmp_path / "explicit.pem"
    monkeypatch.delenv("FACADE_DEV_ISSUER_KEY_PATH")
    assert dev_issuer.default_key_path() == tmp_path / "xdg" / "nhs-fhir-facade" / "dev-issuer.pem"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dev_issuer.default_key_path() == tmp_path / "home" / ".config" / "nhs-fhir-facade" / "dev-issuer.pem"


def test_public_key_set_carries_no_private_part(shared_key_path: Path) -> None:
    keys = public_key_set(load_or_create_key(shared_key_path))
    (key,) = keys.keys
    assert not key.is_private
    assert "d" not in key.as_dict(private=False)
    assert key.kid == DEV_KID


async def test_issued_token_claims_and_lifetime(shared_key_path: Path) -> None:
    key = load_or_create_key(shared_key_path)
    now = 1_700_000_000
    token = issue_token(
        key,
        audience="urn:a",
        scope="patient/*.rs",
        subject="dev-1",
        roles=["clinician"],
        patient="9000000009",
        purpose="ETREAT",
        lifetime=600,
        now=now,
        extra={"ods_code": "RX1"},
    )
    head = jwt.decode(token, public_key_set(key), algorithms=["RS256"])
    assert head.header == {"alg": "RS256", "kid": DEV_KID, "typ": "JWT"}
    claims = head.claims
    assert {
        k: claims[k]
        for k in (
            "iss",
            "sub",
            "aud",
            "iat",
            "nbf",
            "exp",
            "scope",
            "roles",
            "patient",
            "purpose_of_use",
            "client_id",
            "ods_code",
        )
    } == {
        "iss": DEV_ISSUER,
        "sub": "dev-1",
        "aud": "urn:a",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "scope": "patient/*.rs",
        "roles": ["clinician"],
        "patient": "9000000009",
        "purpose_of_use": "ETREAT",
        "client_id": "dev-cli",
        "ods_code": "RX1",
    }
    assert (
        claims["jti"]
        != jwt.decode(
            issue_token(key, audience="urn:a", scope="x", now=now), public_key_set(key), algorithms=["RS256"]
        ).claims["jti"]
    )
    trusted = [TrustedIssuer(DEV_ISSUER, StaticKeys(public_key_set(key)), ("urn:a",), ("RS256",))]
    assert (await TokenVerifier(trusted, leeway=30, clock=lambda: now + 629).verify(token))["sub"] == "dev-1"
    with pytest.raises(InvalidToken, match="expired"):
        await TokenVerifier(trusted, leeway=30, clock=lambda: now + 631).verify(token)


def test_optional_claims_are_left_out_when_not_given(shared_key_path: Path) -> None:
    key = load_or_create_key(shared_key_path)
    claims = jwt.decode(
        issue_token(key, audience="urn:a", scope="user/Patient.r"), public_key_set(key), algorithms=["RS256"]
    ).claims
    assert not {"roles", "patient", "purpose_of_use"} & set(claims)


def test_key_file_is_not_world_readable_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k" / "dev-issuer.pem"
        load_or_create_key(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_dev_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev-issuer.pem"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_key(path)
