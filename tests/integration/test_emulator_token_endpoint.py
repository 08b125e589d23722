"""The emulator's /oauth2/token enforces NHS's signed-JWT rules, over real sockets.

The good assertion comes from the façade's own signer (authlib); the broken ones are
signed independently with PyJWT, each breaking one rule, and must get NHS's message.
"""

from __future__ import annotations

import aiohttp
import pytest
from joserfc.jwk import RSAKey

from server.nhs.auth.assertion import ClientAssertionSigner
from server.nhs.auth.token_endpoint import TokenEndpoint
from server.nhs.errors import UpstreamCredentialsRejected
from tests.support.nhs_auth import (
    API_KEY,
    KID,
    auth_jwks,
    auth_key_pair,
    client_credentials_form,
    configure_oauth,
    id_token,
    oauth_stats,
    pyjwt_assertion,
    register_client,
)
from tests.support.servers import Emulator

AJ = "in client_assertion JWT"


def facade_signer(emulator: Emulator) -> ClientAssertionSigner:
    return ClientAssertionSigner(
        api_key=API_KEY, kid=KID, key=RSAKey.import_key(auth_key_pair().private_pem), token_url=emulator.token_url
    )


async def post_token(http: aiohttp.ClientSession, emulator: Emulator, form: dict[str, str]) -> tuple[int, dict]:
    async with http.post(emulator.token_url, data=form) as resp:
        return resp.status, await resp.json()


async def test_assertion_from_the_facade_signer_is_accepted(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    status, body = await post_token(http, emulator, client_credentials_form(facade_signer(emulator).sign()))
    assert status == 200
    assert set(body) == {"access_token", "expires_in", "token_type", "issued_at"}
    assert body["expires_in"] == "599" and isinstance(body["expires_in"], str)
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit()


@pytest.mark.parametrize(
    "kwargs, status, description",
    [
        (dict(alg="RS256"), 400, f"Invalid 'alg' header {AJ} - unsupported JWT algorithm - must be 'RS512'"),
        (dict(alg="PS512"), 400, f"Invalid 'alg' header {AJ} - unsupported JWT algorithm - must be 'RS512'"),
        (dict(alg="HS512"), 400, f"Invalid 'alg' header {AJ} - unsupported JWT algorithm - must be 'RS512'"),
        (dict(kid=None), 400, f"Missing 'kid' header {AJ}"),
        (dict(kid="unknown-kid"), 401, f"Invalid 'kid' header {AJ} - no matching public key"),
        (dict(headers={"typ": "JOSE"}), 400, f"Invalid 'typ' header {AJ} - must be 'JWT'"),
        (dict(lifetime=301 + 60), 400, f"Invalid 'exp' claim {AJ} - more than 5 minutes in future"),
        (dict(lifetime=3600), 400, f"Invalid 'exp' claim {AJ} - more than 5 minutes in future"),
        (dict(lifetime=-10), 400, f"Invalid 'exp' claim {AJ} - JWT has expired"),
        (dict(claims={"exp": "soon"}), 400, f"Invalid 'exp' claim {AJ} - must be an integer"),
        (dict(claims={"sub": "someone-else"}), 400, f"Missing or non-matching 'iss'/'sub' claims {AJ}"),
        (dict(api_key="unregistered-app"), 401, f"Invalid 'iss'/'sub' claims {AJ}"),
        (dict(claims={"aud": "https://elsewhere/oauth2/token"}), 401, f"Missing or invalid 'aud' claim {AJ}"),
        (dict(claims={"jti": 12345}), 400, f"Invalid 'jti' claim {AJ} - must be a unique string value such as a GUID"),
        (dict(key_name="other"), 401, "JWT signature verification failed"),
    ],
)
async def test_broken_assertions_get_the_nhs_message(emulator: Emulator, http, kwargs, status, description) -> None:
    await register_client(http, emulator.url)
    status_got, body = await post_token(
        http, emulator, client_credentials_form(pyjwt_assertion(emulator.token_url, **kwargs))
    )
    assert (status_got, body["error_description"]) == (status, description)
    assert body["error"] in ("invalid_request", "public_key error")
    assert body["message_id"]


async def test_replayed_jti_is_rejected(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    assertion = pyjwt_assertion(emulator.token_url)
    assert (await post_token(http, emulator, client_credentials_form(assertion)))[0] == 200
    status, body = await post_token(http, emulator, client_credentials_form(assertion))
    assert status == 400
    assert body == {
        "error": "invalid_request",
        "error_description": f"Non-unique 'jti' claim {AJ}",
        "message_id": body["message_id"],
    }


async def test_exp_within_tolerance_is_accepted(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    assert (
        await post_token(http, emulator, client_credentials_form(pyjwt_assertion(emulator.token_url, lifetime=305)))
    )[0] == 200


@pytest.mark.parametrize(
    "form, status, error, description",
    [
        ({}, 400, "invalid_request", "grant_type is missing"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", "grant_type is invalid"),
        (
            {"grant_type": "client_credentials", "client_assertion_type": "x"},
            400,
            "invalid_request",
            "Missing or invalid client_assertion_type - must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            },
            400,
            "invalid_request",
            "Missing client_assertion",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_assertion": "not.a.jwt",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            },
            400,
            "invalid_request",
            "Malformed JWT in client_assertion",
        ),
    ],
)
async def test_malformed_token_requests(emulator: Emulator, http, form, status, error, description) -> None:
    got, body = await post_token(http, emulator, form)
    assert (got, body["error"], body["error_description"]) == (status, error, description)


async def test_json_body_is_rejected(emulator: Emulator, http) -> None:
    async with http.post(emulator.token_url, json={"grant_type": "client_credentials"}) as resp:
        assert resp.status == 400
        assert "x-www-form-urlencoded" in (await resp.json())["error_description"]


async def test_app_without_public_key_gets_403(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url, key_set={"keys": []})
    status, body = await post_token(http, emulator, client_credentials_form(pyjwt_assertion(emulator.token_url)))
    assert status == 403
    assert body["error_description"].startswith("You need to register a public key")


async def test_expires_in_is_configurable(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    await configure_oauth(http, emulator.url, expires_in=2)
    status, body = await post_token(http, emulator, client_credentials_form(pyjwt_assertion(emulator.token_url)))
    assert status == 200 and body["expires_in"] == "2"


# --- token exchange through the façade's TokenEndpoint client ----------------------------


async def test_token_exchange_returns_a_user_token(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    endpoint = TokenEndpoint(http, facade_signer(emulator))
    issued = await endpoint.exchange(id_token())
    assert issued.value and issued.lifetime == 599
    assert (await oauth_stats(http, emulator.url))["tokens_issued"] == 1


@pytest.mark.parametrize(
    "subject, message",
    [
        ("not-a-jwt", "subject_token is invalid"),
        (id_token(kid=None), "Missing 'kid' header in subject_token JWT"),
        (id_token(iss=None), "Missing 'iss' claim in subject_token JWT"),
        (id_token(lifetime=-60), "Invalid 'exp' claim in subject_token JWT - JWT has expired"),
    ],
)
async def test_bad_subject_token_is_blamed_on_the_user(emulator: Emulator, http, subject, message) -> None:
    await register_client(http, emulator.url)
    endpoint = TokenEndpoint(http, facade_signer(emulator))
    with pytest.raises(UpstreamCredentialsRejected) as info:
        await endpoint.exchange(subject)
    assert info.value.user_token_used
    assert message in (info.value.diagnostics or "")


async def test_unregistered_key_is_blamed_on_the_facade(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url, key_set=auth_jwks(kid="another-kid"))
    endpoint = TokenEndpoint(http, facade_signer(emulator))
    with pytest.raises(UpstreamCredentialsRejected) as info:
        await endpoint.client_credentials()
    assert info.value.status == 401 and not info.value.user_token_used
    assert "no matching public key" in (info.value.diagnostics or "")


async def test_keygen_key_pair_signs_an_assertion_the_emulator_accepts(
    emulator: Emulator, http, tmp_path, capsys
) -> None:
    """The whole onboarding path: keygen (4096-bit default) -> register its JWKS -> sign -> token."""
    import json

    from server.__main__ import main
    from server.nhs.auth.keys import load_signing_key

    assert main(["keygen", "--kid", "onboard-1", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    await register_client(http, emulator.url, api_key="onboarding-app", key_set=printed)
    key = load_signing_key((tmp_path / "onboard-1.pem").read_bytes())
    signer = ClientAssertionSigner(api_key="onboarding-app", kid="onboard-1", key=key, token_url=emulator.token_url)
    issued = await TokenEndpoint(http, signer).client_credentials()
    assert issued.lifetime == 599
