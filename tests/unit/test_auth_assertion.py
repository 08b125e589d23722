"""The client assertion the façade signs meets every NHS rule (checked with PyJWT and the
public key, independently of the signing library)."""

from __future__ import annotations

import jwt
import pytest
from joserfc.jwk import RSAKey

from server.nhs.auth.assertion import MAX_LIFETIME, ClientAssertionSigner
from server.nhs.auth.keys import KeyConfigError, load_signing_key, read_private_pem
from tests.support.nhs_auth import API_KEY, KID, auth_key_pair

TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"


def signer(clock: float = 1_700_000_000.0, **kw: object) -> ClientAssertionSigner:
    return ClientAssertionSigner(
        api_key=API_KEY,
        kid=KID,
        key=RSAKey.import_key(auth_key_pair().private_pem),
        token_url=TOKEN_URL,
        clock=lambda: clock,
        **kw,
    )  # type: ignore[arg-type]


def decode(assertion: str) -> dict:
    return jwt.decode(
        assertion, auth_key_pair().public_pem, algorithms=["RS512"], audience=TOKEN_URL, options={"verify_exp": False}
    )


def test_header_is_rs512_with_kid_and_typ() -> None:
    header = jwt.get_unverified_header(signer().sign())
    assert header == {"alg": "RS512", "kid": KID, "typ": "JWT"}


def test_claims_follow_nhs_rules() -> None:
    claims = decode(signer().sign())
    assert claims["iss"] == claims["sub"] == API_KEY
    assert claims["aud"] == TOKEN_URL
    assert claims["iat"] == 1_700_000_000
    assert claims["exp"] == 1_700_000_000 + 300
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_every_assertion_has_a_fresh_jti_and_exp_from_its_own_clock_reading() -> None:
    now = [1_700_000_000.0]
    s = ClientAssertionSigner(
        api_key=API_KEY,
        kid=KID,
        key=RSAKey.import_key(auth_key_pair().private_pem),
        token_url=TOKEN_URL,
        clock=lambda: now[0],
    )
    first = decode(s.sign())
    now[0] += 1000
    second = decode(s.sign())
    assert first["jti"] != second["jti"]
    assert second["exp"] == first["exp"] + 1000  # not frozen at construction (authlib's static claims would be)


def test_signature_verifies_only_with_the_matching_key() -> None:
    other = auth_key_pair("other").public_pem
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(signer().sign(), other, algorithms=["RS512"], audience=TOKEN_URL, options={"verify_exp": False})


@pytest.mark.parametrize("lifetime", [0, MAX_LIFETIME + 1, 3600])
def test_lifetime_over_five_minutes_is_refused(lifetime: int) -> None:
    with pytest.raises(ValueError):
        signer(lifetime=lifetime)


def test_repr_hides_key_and_api_key() -> None:
    text = repr(signer())
    assert API_KEY not in text and "PRIVATE" not in text


def test_bad_pem_error_does_not_echo_the_key() -> None:
    pem = b"-----BEGIN PRIVATE KEY-----\nnot-a-key-secretsecret\n-----END PRIVATE KEY-----\n"
    with pytest.raises(KeyConfigError) as info:
        load_signing_key(pem)
    assert "secretsecret" not in str(info.value)


def test_public_key_is_not_accepted_as_signing_key() -> None:
    with pytest.raises(KeyConfigError, match="public key"):
        load_signing_key(auth_key_pair().public_pem)


def test_key_from_text_or_file(tmp_path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(auth_key_pair().private_pem)
    assert read_private_pem(path, None) == auth_key_pair().private_pem
    assert read_private_pem(None, auth_key_pair().private_pem.decode()) == auth_key_pair().private_pem
    with pytest.raises(KeyConfigError, match="cannot read"):
        read_private_pem(tmp_path / "missing.pem", None)
    with pytest.raises(KeyConfigError, match="FACADE_PRIVATE_KEY"):
        read_private_pem(None, None)
