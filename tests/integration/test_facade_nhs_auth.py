"""The façade authenticates to NHS APIs for real: signed-JWT tokens from the emulator's
token endpoint, checked by the emulated PDS; user tokens passed through or exchanged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.app import create_app
from server.serving import serving
from server.settings import Settings
from tests.support.emulator_control import inject, reset_emulator
from tests.support.fhir_validation import validate_r4
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
from tests.support.servers import Emulator, FHIRClient, running_facade
from tests.support.tokens import facade_access_settings

PDS_PREFIX = "/personal-demographics"
PATIENT = "/Patient/9000000009"


def signed_jwt_settings(emulator: Emulator, **extra: Any) -> dict[str, Any]:
    return {
        "auth_mode": "signed-jwt",
        "api_key": API_KEY,
        "key_id": KID,
        "private_key": auth_key_pair().private_pem.decode(),
        "token_url": emulator.token_url,
        **extra,
    }


@contextlib.asynccontextmanager
async def facade_with(emulator: Emulator, http: aiohttp.ClientSession, **settings: Any) -> AsyncIterator[FHIRClient]:
    async with running_facade(emulator, **settings) as url:
        yield FHIRClient(url, http)


async def require_bearer(http: aiohttp.ClientSession, emulator: Emulator, kind: str, **extra: Any) -> None:
    await configure_oauth(http, emulator.url, require_auth=[{"path_prefix": PDS_PREFIX, "kind": kind}], **extra)


# --- application-restricted -------------------------------------------------------------


async def test_patient_read_with_a_token_the_emulator_checked(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    await require_bearer(http, emulator, "app")
    async with facade_with(emulator, http, **signed_jwt_settings(emulator)) as facade:
        for _ in range(3):
            status, _, body = await facade.get(PATIENT)
            assert status == 200, body
        validate_r4(body)
    stats = await oauth_stats(http, emulator.url)
    assert stats["token_requests"] == 1  # one token serves all three reads
    assert stats["bearer_accepted"] == 3 and stats["bearer_refused"] == 0


async def test_without_credentials_the_protected_emulator_refuses_and_the_client_sees_502(
    emulator: Emulator, http
) -> None:
    """The control for the test above: the emulator really does check the bearer token."""
    await require_bearer(http, emulator, "app")
    async with facade_with(emulator, http) as facade:  # auth_mode none
        status, _, body = await facade.get(PATIENT)
    assert status == 502
    validate_r4(body)
    assert "refused the façade's credentials" in body["issue"][0]["diagnostics"]
    assert (await oauth_stats(http, emulator.url))["bearer_refused"] == 1


async def test_key_from_a_file(emulator: Emulator, http, tmp_path) -> None:
    key_file = tmp_path / "facade.pem"
    key_file.write_bytes(auth_key_pair().private_pem)
    await register_client(http, emulator.url)
    await require_bearer(http, emulator, "app")
    settings = signed_jwt_settings(emulator, private_key=None, private_key_path=str(key_file))
    async with facade_with(emulator, http, **settings) as facade:
        assert (await facade.get(PATIENT))[0] == 200


async def test_token_renewal_after_expiry_makes_exactly_one_new_token_request(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    await require_bearer(http, emulator, "app", expires_in=1)
    async with facade_with(emulator, http, **signed_jwt_settings(emulator)) as facade:
        assert (await facade.get(PATIENT))[0] == 200
        await asyncio.sleep(1.1)  # the 1 s token has expired
        results = await asyncio.gather(*(facade.get(PATIENT) for _ in range(10)))
        assert [r[0] for r in results] == [200] * 10
    stats = await oauth_stats(http, emulator.url)
    assert stats["token_requests"] == 2
    assert stats["bearer_refused"] == 0  # the expired token was never sent


async def test_refused_credentials_are_a_502_operation_outcome(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url, key_set=auth_jwks(name="other"))  # NHS holds another key
    async with facade_with(emulator, http, **signed_jwt_settings(emulator)) as facade:
        status, headers, body = await facade.get(PATIENT)
    assert status == 502
    assert headers["Content-Type"].startswith("application/fhir+json")
    validate_r4(body)
    diagnostics = body["issue"][0]["diagnostics"]
    assert "NHS token endpoint refused the façade's credentials" in diagnostics
    assert "JWT signature verification failed" in diagnostics


async def test_token_endpoint_outage_is_a_503(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    # Persistent outage (times=-1): every retry of the logical request fails too.
    await inject(http, emulator, path_prefix="/oauth2", status=503, times=-1)
    async with facade_with(emulator, http, **signed_jwt_settings(emulator)) as facade:
        status, headers, body = await facade.get(PATIENT)
        assert status == 503 and "Retry-After" in headers
        validate_r4(body)
        await reset_emulator(http, emulator)
        assert (await facade.get(PATIENT))[0] == 200  # the next request fetches a token afresh


async def test_a_single_token_endpoint_failure_is_retried(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    await inject(http, emulator, path_prefix="/oauth2", status=503)
    async with facade_with(emulator, http, **signed_jwt_settings(emulator)) as facade:
        assert (await facade.get(PATIENT))[0] == 200


async def test_sandbox_signed_jwt_uses_an_ephemeral_key_registered_with_the_embedded_emulator(http) -> None:
    settings = Settings(
        auth_mode="signed-jwt", pds_access="application", **facade_access_settings("http://127.0.0.1:8080")
    )
    async with serving(create_app(settings), ready_path="/metadata") as url:
        status, _, body = await FHIRClient(url, http).get(PATIENT)
    assert status == 200, body


def test_settings_never_print_secrets() -> None:
    pem = auth_key_pair().private_pem.decode()
    settings = Settings(auth_mode="signed-jwt", api_key="the-api-key", private_key=pem)
    shown = repr(settings) + str(settings) + str(settings.model_dump())
    assert "the-api-key" not in shown and "PRIVATE KEY" not in shown


# --- user-restricted --------------------------------------------------------------------


async def emulator_user_token(http: aiohttp.ClientSession, emulator: Emulator) -> str:
    """What a caller holds after CIS2 separate auth: an NHS user-restricted access token."""
    form = client_credentials_form(pyjwt_assertion(emulator.token_url))
    form.update(
        grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
        subject_token_type="urn:ietf:params:oauth:token-type:id_token",
        subject_token=id_token(),
    )
    async with http.post(emulator.token_url, data=form) as resp:
        assert resp.status == 200
        return (await resp.json())["access_token"]


async def test_user_restricted_api_without_a_user_token_is_a_401_naming_it(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    async with facade_with(emulator, http, **signed_jwt_settings(emulator, pds_access="user")) as facade:
        status, headers, body = await facade.get(PATIENT)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    validate_r4(body)
    assert body["issue"][0]["code"] == "login"
    assert "PDS is a user-restricted NHS API" in body["issue"][0]["diagnostics"]
    assert (await oauth_stats(http, emulator.url))["token_requests"] == 0


async def test_user_token_is_passed_through_and_checked(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    user_token = await emulator_user_token(http, emulator)
    await require_bearer(http, emulator, "user")
    async with facade_with(emulator, http, **signed_jwt_settings(emulator, pds_access="user")) as facade:
        ok = await facade.get(PATIENT, headers={"X-NHS-User-Token": user_token})
        bad = await facade.get(PATIENT, headers={"X-NHS-User-Token": "not-an-nhs-token"})
    assert ok[0] == 200
    assert bad[0] == 401 and "did not accept the user's token" in bad[2]["issue"][0]["diagnostics"]
    validate_r4(bad[2])
    stats = await oauth_stats(http, emulator.url)
    assert stats["bearer_accepted"] == 1 and stats["bearer_refused"] == 1


async def test_user_token_exchange(emulator: Emulator, http) -> None:
    await register_client(http, emulator.url)
    await require_bearer(http, emulator, "user")
    settings = signed_jwt_settings(emulator, pds_access="user", user_token_mode="exchange")
    cis2 = id_token()
    async with facade_with(emulator, http, **settings) as facade:
        for _ in range(2):
            status, _, body = await facade.get(PATIENT, headers={"X-NHS-User-Token": cis2})
            assert status == 200, body
        status, _, body = await facade.get(PATIENT, headers={"X-NHS-User-Token": id_token(lifetime=-60)})
    assert status == 401
    validate_r4(body)
    assert "subject_token JWT - JWT has expired" in body["issue"][0]["diagnostics"]
    stats = await oauth_stats(http, emulator.url)
    assert stats["token_requests"] == 2  # one exchange for the good user (cached), one refused
    assert stats["bearer_accepted"] == 2


# --- nothing secret in logs -------------------------------------------------------------


async def test_no_token_key_or_assertion_in_logs(emulator: Emulator, http, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await register_client(http, emulator.url)
    await require_bearer(http, emulator, "app")
    async with facade_with(emulator, http, **signed_jwt_settings(emulator)) as facade:
        assert (await facade.get(PATIENT))[0] == 200
    text = caplog.text
    assert emulator.oauth.issued, "the emulator issued a token"
    for token in emulator.oauth.issued:
        assert token not in text
    assert "token endpoint client_credentials -> 200" in text  # the fetch was logged...
    pem = auth_key_pair().private_pem.decode()
    for secret_line in pem.splitlines()[1:-1]:
        assert secret_line not in text  # ...but no key material,
    assert "PRIVATE KEY" not in text and API_KEY not in text
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", text)  # no JWT (assertion),
    assert "Bearer " not in text
