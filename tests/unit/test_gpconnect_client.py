"""Unit tests of the GP Connect client's pure parts: body, headers, JWT, response checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir.errors import Unauthorized
from server.nhs.errors import UpstreamBadResponse
from server.providers.base import RequestContext
from server.sources.gpconnect.client import (
    INTERACTION_ID,
    GPConnectConfig,
    parse_structured_record,
    request_headers,
    structured_record_parameters,
)
from server.sources.gpconnect.consumer_jwt import (
    Assertion,
    Requester,
    consumer_claims,
    decode_unsigned_jwt,
    unsigned_jwt,
)
from server.sources.gpconnect.emulator import _check_jwt
from server.sources.gpconnect.emulator_data import structured_record

REQUESTER = Requester("A11111", "Test Trust", "111111111111", "222222222222", "Facade", "System")
# No principal on CTX: a system caller, asserted as the configured practitioner in sandbox only.
CONFIG = GPConnectConfig("200000000001", "200000000002", REQUESTER, issuer="https://facade.example", sandbox=True)
CTX = RequestContext(request_id="r1", base_url="https://facade.example", user_token="caller-token")
TRACE = "6a1c7c2e-3a64-4a4e-9d4c-5d0e4f7b1a00"


def test_parameters_body_asks_for_allergies_only() -> None:
    body = structured_record_parameters("9000000009", include_resolved=False)
    assert [p["name"] for p in body["parameter"]] == ["patientNHSNumber", "includeAllergies"]
    assert body["parameter"][1]["part"] == [{"name": "includeResolvedAllergies", "valueBoolean": False}]


def test_ssp_headers_carry_asids_interaction_and_an_unsigned_jwt() -> None:
    headers = request_headers(CONFIG, "https://gp.example/fhir", CTX, now=1_700_000_000, trace_id=TRACE)
    assert headers["Ssp-TraceID"] == TRACE
    assert (headers["Ssp-From"], headers["Ssp-To"]) == ("200000000001", "200000000002")
    assert headers["Ssp-InteractionID"] == INTERACTION_ID
    token = headers["Authorization"].removeprefix("Bearer ")
    header, claims = decode_unsigned_jwt(token)
    assert header == {"alg": "none", "typ": "JWT"} and token.endswith(".")
    assert claims["aud"] == "https://gp.example/fhir" and claims["iss"] == "https://facade.example"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["requesting_organization"]["identifier"][0]["value"] == "A11111"
    assert claims["sub"] == claims["requesting_practitioner"]["id"] == "111111111111"
    assert "caller-token" not in headers["Authorization"]  # SSP: the caller's token is not sent on
    assert _check_jwt(headers["Authorization"]) is None  # and the emulator accepts it


def test_gateway_headers_pass_the_callers_token_through() -> None:
    config = GPConnectConfig(**{**CONFIG.__dict__, "auth_mode": "gateway"})
    headers = request_headers(config, "https://gw.example", CTX, now=0, trace_id=TRACE)
    assert headers == {"Authorization": "Bearer caller-token", "Ssp-TraceID": TRACE, "Ods-from": "A11111"}
    with pytest.raises(Unauthorized):
        request_headers(
            config, "https://gw.example", RequestContext(request_id="r", base_url="b"), now=0, trace_id=TRACE
        )


@given(
    st.dictionaries(
        st.text(max_size=8), st.one_of(st.integers(min_value=0, max_value=2**40), st.text(max_size=8)), max_size=5
    )
)
def test_unsigned_jwt_round_trips(claims: dict[str, Any]) -> None:
    assert decode_unsigned_jwt(unsigned_jwt(claims)) == ({"alg": "none", "typ": "JWT"}, claims)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.sig", "!!.!!.", "W10.W10."])
def test_decode_rejects_what_is_not_an_unsigned_jwt(token: str) -> None:
    with pytest.raises(ValueError):
        decode_unsigned_jwt(token)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"exp": 1_700_000_900}, "exp"),
        ({"reason_for_request": "secondaryuses"}, "directcare"),
        ({"requesting_device": {"resourceType": "Patient"}}, "Device"),
        ({"sub": "someone-else"}, "sub"),
    ],
)
def test_emulator_rejects_bad_consumer_claims(change: dict[str, Any], problem: str) -> None:
    assertion = Assertion(REQUESTER.sandbox_practitioner(), REQUESTER.organisation())
    claims = consumer_claims(assertion, REQUESTER.device(), issuer="i", audience="a", now=1_700_000_000) | change
    assert problem in (_check_jwt(f"Bearer {unsigned_jwt(claims)}") or "")


def _record() -> dict[str, Any]:
    record = structured_record("9000000009", True)
    assert record is not None
    return record


def test_parse_accepts_the_patients_record() -> None:
    assert parse_structured_record(_record(), "9000000009")["type"] == "collection"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: {"resourceType": "OperationOutcome"},
        lambda r: r | {"type": "searchset"},
        lambda r: r | {"entry": [{"fullUrl": "x"}]},
        lambda r: r,  # asked for another patient: see nhs below
    ],
)
def test_parse_rejects_what_the_facade_cannot_trust(mangle: Any) -> None:
    with pytest.raises(UpstreamBadResponse):
        parse_structured_record(mangle(_record()), "9000000017")


def test_parse_rejects_invalid_stu3_allergy_without_echoing_values() -> None:
    record = copy.deepcopy(_record())
    allergy = next(e["resource"] for e in record["entry"] if e["resource"]["resourceType"] == "AllergyIntolerance")
    allergy["assertedDate"] = "Tuesday 3pm"
    with pytest.raises(UpstreamBadResponse) as caught:
        parse_structured_record(record, "9000000009")
    assert "assertedDate" in str(caught.value) and "Tuesday" not in str(caught.value)


@pytest.mark.parametrize("contained", [[{"resourceType": "NotAType"}], [{"resourceType": None}], [{"resourceType": 7}]])
def test_parse_rejects_contained_resources_of_no_known_type(contained: list[Any]) -> None:
    # fhir.resources raises KeyError/TypeError (not ValidationError) for these: was a 500.
    record = copy.deepcopy(_record())
    allergy = next(e["resource"] for e in record["entry"] if e["resource"]["resourceType"] == "AllergyIntolerance")
    allergy["contained"] = contained
    with pytest.raises(UpstreamBadResponse) as caught:
        parse_structured_record(record, "9000000009")
    assert "AllergyIntolerance" in str(caught.value)
