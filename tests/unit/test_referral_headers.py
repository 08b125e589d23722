"""BaRS and e-RS request headers (pure builders)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.nhs.auth.headers import CallerTokenIfAny as CallerBearer
from server.providers.base import RequestContext
from server.sources.referrals.bars_client import BarsHeaderConfig, bars_headers, target_identifier, uuid_correlation
from server.sources.referrals.ers_client import ERSContextMissing, ers_context_headers
from server.sources.referrals.settings import BarsTarget, ReferralsSettings


def decode(value: str) -> object:
    return json.loads(base64.b64decode(value, validate=True))


def test_target_identifier_is_byte_for_byte_the_nhs_example() -> None:
    # shared/reference/nhs-apis.md s.2.5
    assert (
        target_identifier(BarsTarget(key="sandbox", system="tests", value="NHS0001"))
        == "eyJ2YWx1ZSI6ICJOSFMwMDAxIiwgInN5c3RlbSI6ICJ0ZXN0cyJ9"
    )


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1), st.text(min_size=1))
def test_target_identifier_decodes_to_system_and_value(system: str, value: str) -> None:
    header = target_identifier(BarsTarget(key="k", system=system, value=value))
    assert header.isascii()
    assert decode(header) == {"value": value, "system": system}


def test_bars_headers_are_base64_fhir_resources_and_uuids() -> None:
    ctx = RequestContext(request_id="not-a-uuid", base_url="http://x")
    headers = bars_headers(
        BarsTarget(key="t", system="tests", value="NHS0001"),
        BarsHeaderConfig(accept_version="1.1.0", end_user_ods="X26", software_version="9.9"),
        ctx,
    )
    assert headers["Accept"] == "application/fhir+json; version=1.1.0"
    assert decode(headers["NHSD-End-User-Organisation"]) == {
        "resourceType": "Organization",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X26"}],
    }
    device = decode(headers["NHSD-Requesting-Software"])
    assert device["resourceType"] == "Device" and device["version"] == [{"value": "9.9"}]
    assert uuid.UUID(headers["X-Correlation-ID"])
    assert headers["X-Correlation-ID"] == uuid_correlation("not-a-uuid")  # stable per inbound id
    inbound = str(uuid.uuid4())
    assert uuid_correlation(inbound) == inbound


def test_bars_end_user_organisation_without_ods_names_the_software() -> None:
    headers = bars_headers(
        BarsTarget(key="t", system="s", value="v"),
        BarsHeaderConfig(),
        RequestContext(request_id=str(uuid.uuid4()), base_url="http://x"),
    )
    assert decode(headers["NHSD-End-User-Organisation"]) == {"resourceType": "Organization", "name": "nhs-fhir-facade"}


def test_ers_context_comes_from_the_caller_then_settings() -> None:
    inbound = {
        "nhsd-ers-business-function": "SERVICE_PROVIDER_CLINICIAN",
        "nhsd-session-urid": "555021935107",
        "NHSD-eRS-On-Behalf-Of-User-ID": "021600556514",
        "authorization": "Bearer secret",
    }
    out = ers_context_headers(
        inbound, default_business_function="REFERRING_CLINICIAN", default_ods="R69", user_restricted=True
    )
    assert out == {
        "NHSD-eRS-Business-Function": "SERVICE_PROVIDER_CLINICIAN",
        "NHSD-Session-URID": "555021935107",
        "NHSD-eRS-On-Behalf-Of-User-ID": "021600556514",
        "NHSD-End-User-Organisation-ODS": "R69",
    }
    assert (
        ers_context_headers(
            {}, default_business_function="REFERRING_CLINICIAN", default_ods="R69", user_restricted=True
        )["NHSD-eRS-Business-Function"]
        == "REFERRING_CLINICIAN"
    )


def test_user_restricted_ers_without_context_names_the_missing_headers() -> None:
    with pytest.raises(ERSContextMissing) as err:
        ers_context_headers(
            {"NHSD-End-User-Organisation-ODS": " "},
            default_business_function=None,
            default_ods=None,
            user_restricted=True,
        )
    assert err.value.missing == ["NHSD-eRS-Business-Function", "NHSD-End-User-Organisation-ODS"]
    assert ers_context_headers({}, default_business_function=None, default_ods=None, user_restricted=False) == {}


async def test_sandbox_user_auth_forwards_only_a_present_token() -> None:
    assert await CallerBearer().headers(RequestContext("r", "b", user_token="tok")) == {"Authorization": "Bearer tok"}
    assert await CallerBearer().headers(RequestContext("r", "b")) == {}


def test_bars_targets_setting_reads_json_and_checks_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "FACADE_BARS_TARGETS", '[{"key": "dos55", "system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "55"}]'
    )
    assert ReferralsSettings().bars_targets == [
        BarsTarget(key="dos55", system="https://fhir.nhs.uk/Id/dos-service-id", value="55")
    ]
    monkeypatch.setenv("FACADE_BARS_TARGETS", '[{"key": "bad.key", "system": "s", "value": "v"}]')
    with pytest.raises(ValueError):
        ReferralsSettings()
