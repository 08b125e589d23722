"""Which Authorization header each access mode sends, and the 401 for a missing user token."""

from __future__ import annotations

import pytest

from server.nhs.auth.headers import AppRestrictedAuth, CallerTokenIfAny, ExchangedTokens, UserRestrictedAuth
from server.nhs.auth.profiles import AuthProfiles
from server.nhs.auth.tokens import IssuedToken, TokenCache
from server.nhs.client import NoAuth
from server.nhs.errors import UserTokenMissing
from server.providers.base import RequestContext
from server.providers.failures import as_fhir_error
from tests.support.fhir_validation import validate_r4


def ctx(token: str | None = None) -> RequestContext:
    return RequestContext(request_id="r1", base_url="http://x", user_token=token)


class Exchanger:
    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def __call__(self, subject: str) -> IssuedToken:
        self.subjects.append(subject)
        return IssuedToken(f"nhs-for-{subject}", 599)


async def test_user_token_is_passed_through() -> None:
    auth = UserRestrictedAuth("Prescription Tracker")
    assert await auth.headers(ctx("cis2-abc")) == {"Authorization": "Bearer cis2-abc"}


async def test_missing_user_token_is_a_401_naming_the_api() -> None:
    auth = UserRestrictedAuth("e-RS")
    with pytest.raises(UserTokenMissing) as info:
        await auth.headers(ctx(None))
    err = as_fhir_error(info.value)  # as the caller sees it
    assert err.status == 401
    assert err.headers["WWW-Authenticate"].startswith('Bearer realm="nhs-fhir-facade"')
    body = err.outcome()
    validate_r4(body)
    assert body["issue"][0]["code"] == "login"
    assert "e-RS is a user-restricted NHS API" in body["issue"][0]["diagnostics"]
    assert "CIS2" in body["issue"][0]["diagnostics"]


async def test_exchange_mode_sends_the_exchanged_token_and_caches_it_per_user() -> None:
    exchanger = Exchanger()
    auth = UserRestrictedAuth("GP Connect", ExchangedTokens(exchanger))
    assert await auth.headers(ctx("alice")) == {"Authorization": "Bearer nhs-for-alice"}
    assert await auth.headers(ctx("alice")) == {"Authorization": "Bearer nhs-for-alice"}
    assert await auth.headers(ctx("bob")) == {"Authorization": "Bearer nhs-for-bob"}
    assert exchanger.subjects == ["alice", "bob"]


async def test_exchange_cache_is_bounded() -> None:
    exchanger = Exchanger()
    tokens = ExchangedTokens(exchanger, max_users=2)
    for user in ("a", "b", "c", "a"):
        await tokens.access_token(user)
    assert exchanger.subjects == ["a", "b", "c", "a"]  # "a" was evicted by "c"
    assert "a" not in repr(tokens).replace("ExchangedTokens", "")


async def test_app_restricted_auth_sends_the_application_token() -> None:
    async def fetch() -> IssuedToken:
        return IssuedToken("app-token", 599)

    auth = AppRestrictedAuth(TokenCache(fetch))
    assert await auth.headers(ctx("ignored-user-token")) == {"Authorization": "Bearer app-token"}


def test_profiles_choose_auth_per_access_mode() -> None:
    async def fetch() -> IssuedToken:
        return IssuedToken("t", 599)

    app = AppRestrictedAuth(TokenCache(fetch))
    profiles = AuthProfiles(application=app, enabled=True)
    assert profiles.for_api("PDS", "application") is app
    user = profiles.for_api("e-RS", "user")
    assert isinstance(user, UserRestrictedAuth) and user.api == "e-RS"
    off = AuthProfiles.none()
    assert isinstance(off.for_api("PDS", "application"), NoAuth)
    # No auth configured: user-restricted APIs still forward a caller's token when one is sent.
    assert isinstance(off.for_api("e-RS", "user"), CallerTokenIfAny)
