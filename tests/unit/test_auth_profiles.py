"""build_auth: settings -> auth per access mode, and clear start-up errors for bad config."""

from __future__ import annotations

import aiohttp
import pytest

from server.nhs.auth.headers import AppRestrictedAuth
from server.nhs.auth.keys import KeyConfigError
from server.nhs.auth.profiles import build_auth
from server.nhs.client import NoAuth
from server.settings import Settings
from tests.support.nhs_auth import auth_key_pair

TOKEN_URL = "https://int.api.service.nhs.uk/oauth2/token"


async def build(**settings: object):
    async with aiohttp.ClientSession() as session:
        return await build_auth(Settings(**settings), session, emulator_url=None)


async def test_default_is_no_credentials() -> None:
    profiles = await build()
    assert isinstance(profiles.for_api("PDS", "application"), NoAuth)


async def test_signed_jwt_with_a_key_builds_app_auth_without_calling_nhs() -> None:
    profiles = await build(
        auth_mode="signed-jwt",
        api_key="k",
        key_id="kid",
        token_url=TOKEN_URL,
        private_key=auth_key_pair().private_pem.decode(),
    )
    assert isinstance(profiles.for_api("PDS", "application"), AppRestrictedAuth)
    assert profiles.exchanged is None


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(token_url=TOKEN_URL), "FACADE_PRIVATE_KEY"),
        (dict(token_url=TOKEN_URL, private_key_path="/nonexistent/key.pem", api_key="k", key_id="kid"), "cannot read"),
        (
            dict(token_url=TOKEN_URL, private_key="-----BEGIN nonsense-----", api_key="k", key_id="kid"),
            "not a readable",
        ),
        (dict(token_url=TOKEN_URL, private_key="PEM"), "FACADE_API_KEY and FACADE_KEY_ID"),
        (dict(), "FACADE_TOKEN_URL"),
    ],
)
async def test_incomplete_signed_jwt_config_fails_at_start_with_a_clear_message(settings, message) -> None:
    if "private_key" in settings and settings["private_key"] == "PEM":
        settings = {**settings, "private_key": auth_key_pair().private_pem.decode()}
    with pytest.raises(KeyConfigError, match=message):
        await build(auth_mode="signed-jwt", **settings)
