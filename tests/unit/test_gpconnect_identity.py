"""Who the GP Connect consumer JWT names: the authenticated caller, not a made-up practitioner.

Pure functions only (the clock is an argument). Rules from GP Connect "Cross-organisation
audit and provenance": requesting_practitioner is the logged-on user (SDS user id and role
profile id, UNK without a smartcard, plus a local user id), sub = its id, the organisation
is the user's, and the structured record is for direct care.
"""

from __future__ import annotations

from typing import Any

import pytest

from server.access.principal import Principal
from server.access.scopes import ScopeSet
from server.fhir.errors import Forbidden
from server.providers.base import RequestContext
from server.sources.gpconnect.client import (
    GPConnectConfig,
    acts_for_a_user,
    asserted_identity,
    gpconnect_config,
    request_headers,
)
from server.sources.gpconnect.consumer_jwt import (
    ODS_SYSTEM,
    SDS_ROLE_PROFILE_ID,
    SDS_USER_ID,
    UNKNOWN,
    Assertion,
    Device,
    Organisation,
    Practitioner,
    Requester,
    consumer_claims,
    decode_unsigned_jwt,
    local_user_system,
    practitioner_for,
    reason_for_request,
    unsigned_jwt,
)
from server.sources.gpconnect.emulator import _check_jwt
from server.sources.gpconnect.settings import GPConnectSettings

REQUESTER = Requester("A11111", "Test Trust", "111111111111", "222222222222", "Facade", "System")
ISSUER = "https://login.trust.example/realms/staff"
TRACE = "6a1c7c2e-3a64-4a4e-9d4c-5d0e4f7b1a00"
NOW = 1_700_000_000


def config(*, sandbox: bool = False, auth_mode: str = "ssp-jwt") -> GPConnectConfig:
    return GPConnectConfig(
        "200000000001", "200000000002", REQUESTER, issuer="https://facade.example", auth_mode=auth_mode, sandbox=sandbox
    )  # type: ignore[arg-type]


def user(**fields: Any) -> Principal:
    base: dict[str, Any] = dict(subject="jdoe", issuer=ISSUER, scopes=ScopeSet.parse("user/*.rs"), client_id="ward-app")
    return Principal(**(base | fields))


def ctx(principal: Principal | None, token: str | None = None) -> RequestContext:
    return RequestContext(request_id="r1", base_url="https://facade.example", user_token=token, principal=principal)


def claims_sent(principal: Principal | None, cfg: GPConnectConfig | None = None) -> dict[str, Any]:
    headers = request_headers(cfg or config(), "https://gp.example/fhir", ctx(principal), now=NOW, trace_id=TRACE)
    assert _check_jwt(headers["Authorization"]) is None  # the emulator (a strict provider) accepts it
    return decode_unsigned_jwt(headers["Authorization"].removeprefix("Bearer "))[1]


def identifiers(claims: dict[str, Any]) -> dict[str, str]:
    return {i["system"]: i["value"] for i in claims["requesting_practitioner"]["identifier"]}


def test_a_smartcard_user_is_named_with_sds_ids_local_id_name_and_organisation() -> None:
    claims = claims_sent(
        user(
            sds_user_id="555111222333",
            sds_role_profile_id="555444333222",
            family="Jones",
            given="Claire",
            organisation_ods="RR8",
            purpose="TREAT",
        )
    )
    assert claims["sub"] == claims["requesting_practitioner"]["id"] == "555111222333"
    assert identifiers(claims) == {SDS_USER_ID: "555111222333", SDS_ROLE_PROFILE_ID: "555444333222", ISSUER: "jdoe"}
    assert claims["requesting_practitioner"]["name"] == [{"family": "Jones", "given": ["Claire"]}]
    assert claims["requesting_organization"]["identifier"] == [{"system": ODS_SYSTEM, "value": "RR8"}]
    assert claims["reason_for_request"] == "directcare"
    assert "111111111111" not in str(claims)  # the configured practitioner is not used for a user


def test_a_user_without_sds_identity_is_unk_plus_the_local_user_id() -> None:
    claims = claims_sent(user())
    assert claims["sub"] == claims["requesting_practitioner"]["id"] == "jdoe"
    assert identifiers(claims) == {SDS_USER_ID: UNKNOWN, SDS_ROLE_PROFILE_ID: UNKNOWN, ISSUER: "jdoe"}
    assert "name" not in claims["requesting_practitioner"]  # never invented
    # no ODS code in the token: the configured organisation, with its configured name
    assert claims["requesting_organization"]["identifier"][0]["value"] == "A11111"
    assert claims["requesting_organization"]["name"] == "Test Trust"


def test_the_configured_ods_code_keeps_its_configured_name() -> None:
    claims = claims_sent(user(organisation_ods="A11111"))
    assert claims["requesting_organization"]["name"] == "Test Trust"
    other = claims_sent(user(organisation_ods="RR8"))
    assert other["requesting_organization"]["name"] == "RR8"  # no name known for it: the code, nothing invented


def test_a_subject_that_is_not_a_fhir_id_gets_a_stable_digest_id() -> None:
    principal = user(subject="claire.jones@trust.example")
    first, again = practitioner_for(principal), practitioner_for(principal)
    assert first.id == again.id and len(first.id) == 64 and first.local_id == "claire.jones@trust.example"
    assert practitioner_for(user(subject="claire.jones@trust.example", issuer="https://other.example")).id != first.id
    assert claims_sent(principal)["sub"] == first.id


@pytest.mark.parametrize(
    "issuer, system",
    [
        ("https://login.trust.example/realms/staff", "https://login.trust.example/realms/staff"),
        ("urn:nhs-fhir-facade:dev-issuer", "urn:nhs-fhir-facade:dev-issuer"),
        ("trust idp", "urn:nhs-fhir-facade:issuer:trust%20idp"),
    ],
)
def test_local_user_system_is_derived_from_the_issuer(issuer: str, system: str) -> None:
    assert local_user_system(issuer) == system


@pytest.mark.parametrize(
    "purpose, reason",
    [
        ("TREAT", "directcare"),
        ("ETREAT", "directcare"),
        (None, "directcare"),
        ("HOPERAT", None),
        ("HPAYMT", None),
        ("PATRQT", None),
    ],
)
def test_purpose_of_use_to_reason_for_request(purpose: str | None, reason: str | None) -> None:
    assert reason_for_request(purpose) == reason


@pytest.mark.parametrize("auth_mode", ["ssp-jwt", "gateway"])
def test_a_purpose_other_than_direct_care_is_refused_before_the_call(auth_mode: str) -> None:
    with pytest.raises(Forbidden) as caught:
        request_headers(
            config(sandbox=True, auth_mode=auth_mode),
            "https://gp.example/fhir",
            ctx(user(purpose="HOPERAT"), token="cis2"),
            now=NOW,
            trace_id=TRACE,
        )
    outcome = caught.value.outcome()
    assert caught.value.status == 403 and outcome["issue"][0]["code"] == "forbidden"
    assert "HOPERAT" in outcome["issue"][0]["diagnostics"] and "direct care" in outcome["issue"][0]["diagnostics"]


def test_break_glass_is_direct_care() -> None:
    assert claims_sent(user(purpose="ETREAT"))["reason_for_request"] == "directcare"


@pytest.mark.parametrize(
    "principal",
    [
        None,
        user(scopes=ScopeSet.parse("system/*.rs")),
        user(subject="ward-app", client_id="ward-app", scopes=ScopeSet.parse("user/*.rs")),
    ],
)
def test_a_system_caller_is_the_sandbox_practitioner_in_sandbox_and_refused_elsewhere(
    principal: Principal | None,
) -> None:
    assert principal is None or not acts_for_a_user(principal)
    claims = claims_sent(principal, config(sandbox=True))
    assert claims["sub"] == "111111111111" and identifiers(claims)[SDS_USER_ID] == "111111111111"
    with pytest.raises(Forbidden, match="logged-on user"):
        asserted_identity(config(sandbox=False), principal)


def test_an_sds_user_id_always_means_a_user() -> None:
    assert acts_for_a_user(user(scopes=ScopeSet.parse("system/*.rs"), sds_user_id="555111222333"))
    assert acts_for_a_user(user(scopes=ScopeSet.parse("patient/AllergyIntolerance.rs")))


def test_gateway_sends_the_callers_organisation_as_ods_from() -> None:
    headers = request_headers(
        config(auth_mode="gateway"),
        "https://gw.example",
        ctx(user(organisation_ods="RR8"), token="cis2"),
        now=NOW,
        trace_id=TRACE,
    )
    assert headers == {"Authorization": "Bearer cis2", "Ssp-TraceID": TRACE, "Ods-from": "RR8"}


def test_claims_take_the_clock_as_an_argument() -> None:
    assertion = Assertion(Practitioner("p1", local_system="urn:x", local_id="p1"), Organisation("RR8", "RR8"))
    claims = consumer_claims(assertion, Device(), issuer="https://facade.example", audience="https://gp", now=NOW)
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 300)
    assert claims["sub"] == "p1" and claims["aud"] == "https://gp" and claims["iss"] == "https://facade.example"


@pytest.mark.parametrize(
    "url, sandbox",
    [
        (None, True),  # the embedded emulator
        ("http://127.0.0.1:9100/gpconnect/fhir", True),
        ("https://proxy.spine.nhs.uk/https://gp.example/fhir", False),
    ],
)
def test_sandbox_is_decided_by_where_gp_connect_is(url: str | None, sandbox: bool) -> None:
    assert gpconnect_config(GPConnectSettings(gpconnect_base_url=url), "http://facade.test").sandbox is sandbox


def _jwt_with_practitioner(practitioner: dict[str, Any]) -> str:
    assertion = Assertion(REQUESTER.sandbox_practitioner(), REQUESTER.organisation())
    claims = consumer_claims(assertion, REQUESTER.device(), issuer="i", audience="a", now=NOW)
    claims["requesting_practitioner"] = {"resourceType": "Practitioner", "id": claims["sub"], **practitioner}
    return f"Bearer {unsigned_jwt(claims)}"


@pytest.mark.parametrize(
    "practitioner, problem",
    [
        ({}, "must have an identifier"),
        ({"identifier": []}, "must have an identifier"),
        ({"identifier": [{"system": SDS_USER_ID}]}, "system and a value"),
        ({"identifier": [{"system": SDS_ROLE_PROFILE_ID, "value": "1"}]}, SDS_USER_ID),
        (
            {
                "identifier": [
                    {"system": SDS_USER_ID, "value": UNKNOWN},
                    {"system": SDS_ROLE_PROFILE_ID, "value": UNKNOWN},
                ]
            },
            "local user identifier",
        ),
    ],
)
def test_emulator_rejects_a_practitioner_nobody_can_identify(practitioner: dict[str, Any], problem: str) -> None:
    assert problem in (_check_jwt(_jwt_with_practitioner(practitioner)) or "")


def test_emulator_accepts_unk_with_a_local_identifier() -> None:
    token = _jwt_with_practitioner(
        {"identifier": [{"system": SDS_USER_ID, "value": UNKNOWN}, {"system": ISSUER, "value": "jdoe"}]}
    )
    assert _check_jwt(token) is None
