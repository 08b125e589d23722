"""Over real sockets: the GP Connect emulator receives the caller's identity in the consumer
JWT (not the configured practitioner), and a non-direct-care purpose never reaches it: through
the GP Connect client directly, and through the façade with a real access token."""

from __future__ import annotations

import aiohttp
import pytest

from server.access.dev_issuer import DEV_ISSUER
from server.access.principal import Principal
from server.access.scopes import ScopeSet
from server.fhir.errors import Forbidden
from server.nhs.client import ClientConfig, NHSClient
from server.providers.base import RequestContext
from server.sources.gpconnect.client import GPConnectClient, GPConnectConfig
from server.sources.gpconnect.consumer_jwt import SDS_ROLE_PROFILE_ID, SDS_USER_ID, UNKNOWN, Requester
from tests.support.checked_client import CheckedClient
from tests.support.emulator_control import gpconnect_jwt_claims, upstream_total
from tests.support.servers import Emulator, running_facade
from tests.support.tokens import bearer, token

ISSUER = "https://login.trust.example/realms/staff"
REQUESTER = Requester("A11111", "Test Trust", "111111111111", "222222222222", "Facade", "System")


def gp_connect(http: aiohttp.ClientSession, emulator: Emulator) -> GPConnectClient:
    # sandbox=False: the production rule (a user is required) applies, emulator or not.
    config = GPConnectConfig("200000000001", "200000000002", REQUESTER, issuer="https://facade.example")
    return GPConnectClient(NHSClient(http, ClientConfig("GP Connect", emulator.gpconnect_url)), config)


def ctx(principal: Principal) -> RequestContext:
    return RequestContext(request_id="it-1", base_url="https://facade.example", principal=principal)


def identifiers(claims: dict) -> dict[str, str]:
    return {i["system"]: i["value"] for i in claims["requesting_practitioner"]["identifier"]}


async def test_the_emulator_receives_the_smartcard_users_identity(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    principal = Principal(
        subject="cjones",
        issuer=ISSUER,
        scopes=ScopeSet.parse("user/AllergyIntolerance.rs"),
        client_id="ward-app",
        purpose="TREAT",
        organisation_ods="RR8",
        sds_user_id="555111222333",
        sds_role_profile_id="555444333222",
        family="Jones",
        given="Claire",
    )
    record = await gp_connect(http, emulator).structured_record(
        "9000000009", include_resolved=False, ctx=ctx(principal)
    )
    assert record["type"] == "collection"
    [claims] = await gpconnect_jwt_claims(http, emulator)
    assert claims["sub"] == claims["requesting_practitioner"]["id"] == "555111222333"
    assert identifiers(claims) == {SDS_USER_ID: "555111222333", SDS_ROLE_PROFILE_ID: "555444333222", ISSUER: "cjones"}
    assert claims["requesting_practitioner"]["name"] == [{"family": "Jones", "given": ["Claire"]}]
    assert claims["requesting_organization"]["identifier"][0]["value"] == "RR8"
    assert claims["reason_for_request"] == "directcare"


async def test_a_user_without_smartcard_is_unk_with_the_local_id(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    principal = Principal(subject="agency-nurse-7", issuer=ISSUER, scopes=ScopeSet.parse("user/*.rs"), purpose="ETREAT")
    await gp_connect(http, emulator).structured_record("9000000017", include_resolved=False, ctx=ctx(principal))
    [claims] = await gpconnect_jwt_claims(http, emulator)
    assert claims["sub"] == "agency-nurse-7"
    assert identifiers(claims) == {SDS_USER_ID: UNKNOWN, SDS_ROLE_PROFILE_ID: UNKNOWN, ISSUER: "agency-nurse-7"}
    assert claims["requesting_organization"]["identifier"][0]["value"] == "A11111"


@pytest.mark.parametrize(
    "principal",
    [
        Principal(subject="cjones", issuer=ISSUER, scopes=ScopeSet.parse("user/*.rs"), purpose="HOPERAT"),
        Principal(subject="batch", issuer=ISSUER, scopes=ScopeSet.parse("system/*.rs"), client_id="batch"),
    ],
)
async def test_refusals_never_reach_gp_connect(
    emulator: Emulator, http: aiohttp.ClientSession, principal: Principal
) -> None:
    with pytest.raises(Forbidden):
        await gp_connect(http, emulator).structured_record("9000000009", include_resolved=False, ctx=ctx(principal))
    assert await upstream_total(http, emulator) == 0
    assert await gpconnect_jwt_claims(http, emulator) == []


async def test_through_the_facade_the_gp_system_sees_the_token_user(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    cis2_user = token(
        subject="cjones",
        extra={
            "sds_user_id": "555111222333",
            "sds_role_profile_id": "555444333222",
            "ods_code": "RR8",
            "family_name": "Jones",
            "given_name": "Claire",
        },
    )
    async with running_facade(emulator) as url:
        fhir = CheckedClient(url, http)
        answer = await fhir.get("/AllergyIntolerance?patient=9000000009", headers=bearer(cis2_user))
        assert answer.status == 200, answer.body
        plain = await fhir.get("/AllergyIntolerance?patient=9000000017")  # the default test user: no SDS ids
        assert plain.status == 200, plain.body
    first, second = await gpconnect_jwt_claims(http, emulator)
    assert first["sub"] == "555111222333"
    assert identifiers(first) == {
        SDS_USER_ID: "555111222333",
        SDS_ROLE_PROFILE_ID: "555444333222",
        DEV_ISSUER: "cjones",
    }
    assert first["requesting_practitioner"]["name"] == [{"family": "Jones", "given": ["Claire"]}]
    assert first["requesting_organization"]["identifier"][0]["value"] == "RR8"
    assert second["sub"] == "test-user" and identifiers(second)[SDS_USER_ID] == UNKNOWN
    assert "111111111111" not in str([first, second])  # the sandbox practitioner is for system callers only
