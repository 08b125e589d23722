"""capability.security, capability.smart and the access side of capability.openapi: pure
derivations from settings, the role table, the registry and the wiring's recorded access
modes (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from capability.openapi import openapi_document
from capability.security import (
    NHS_USER_TOKEN_HEADER,
    PURPOSE_CLAIM,
    auth_endpoints,
    rest_security,
    role_table,
    trusted_issuer_names,
    user_restricted,
)
from capability.smart import PERMISSION_CAPABILITIES, scopes_supported, smart_configuration
from server.access.claims import principal_from_claims
from server.access.control import NHS_USER_TOKEN_HEADER as ENFORCED_USER_TOKEN_HEADER
from server.access.dev_issuer import DEV_ISSUER
from server.access.roles import load_role_table
from server.providers.base import RequestContext, ResourceProvider
from server.providers.registry import ProviderRegistry
from server.settings import Settings
from server.sources.pds.provider import PatientFromPDS
from tests.support.fhir_validation import validate_r4
from tests.support.sources import nhs_urls

ACCESS = {
    "Patient": (("PDS", "application"),),
    "ServiceRequest": (("e-RS", "user"), ("BaRS", "application")),
    "MedicationRequest": (("CPT", "user"),),
    "Device": (),
}
PRODUCTION_PDS = "https://api.service.nhs.uk/personal-demographics/FHIR/R4"
ISSUER = "https://idp.hospital.example"
CUSTOM_POLICY = """
roles:
  ward-nurse:
    fhir: {Patient: r, Observation: rs}
  records:
    pas: [patients.read]
  steward:
    fhir: {"*": cruds, Patient: r}
clinical_types: [Observation]
clinical_purposes: [TREAT, ETREAT]
break_glass_purposes: [ETREAT]
job_roles:
  R8001: [ward-nurse]
"""


class DeviceReadOnly(ResourceProvider):
    resource_type: ClassVar[str] = "Device"
    interactions: ClassVar[tuple[str, ...]] = ("read",)

    async def read(self, resource_id: str, ctx: RequestContext) -> dict[str, Any]:
        raise AssertionError("not called")


class NothingReadable(DeviceReadOnly):
    resource_type: ClassVar[str] = "Basic"
    interactions: ClassVar[tuple[str, ...]] = ()


def registry(*providers: ResourceProvider) -> ProviderRegistry:
    reg = ProviderRegistry()
    for provider in providers:
        reg.register(provider)
    return reg


def codes(security: dict[str, Any]) -> list[str]:
    return [c["code"] for c in security["service"][0]["coding"]]


def in_statement(security: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "security": security}],
    }


def test_user_restricted_comes_from_the_access_modes_only() -> None:
    assert user_restricted(ACCESS) == {"MedicationRequest": ["CPT"], "ServiceRequest": ["e-RS"]}
    assert user_restricted({}) == {}


def test_the_names_published_are_the_names_enforced() -> None:
    assert NHS_USER_TOKEN_HEADER.lower() == ENFORCED_USER_TOKEN_HEADER
    table = load_role_table()
    principal = principal_from_claims({"sub": "u", "iss": "i", PURPOSE_CLAIM: "treat"}, table)
    assert principal.purpose == "TREAT"


# ---- rest.security ----------------------------------------------------------------------------


def test_security_always_claims_oauth_and_smart_and_no_cors_by_default() -> None:
    security = rest_security(Settings(), ACCESS, nhs_urls(Settings()))
    assert codes(security) == ["OAuth", "SMART-on-FHIR"]
    assert security["cors"] is False
    assert "extension" not in security  # no token endpoint known: none invented
    validate_r4(in_statement(security))


def test_cors_follows_the_allowed_origins() -> None:
    assert (
        rest_security(
            Settings(cors_allow_origins=["https://app.example"]),
            ACCESS,
            nhs_urls(Settings(cors_allow_origins=["https://app.example"])),
        )["cors"]
        is True
    )


def test_description_names_every_role_of_the_table_and_the_rules() -> None:
    settings = Settings()
    text = rest_security(settings, ACCESS, nhs_urls(settings))["description"]
    table = role_table(settings)
    for name in table.roles:
        assert f"`{name}`" in text
    for rtype in table.clinical_types:
        assert rtype in text
    assert "R8000" in text and "ETREAT is break-glass" in text and "X-Purpose-Of-Use" in text
    assert "query suffix" in text and "refused" in text and "`patient` claim" in text
    assert "legitimate relationship" in text
    assert DEV_ISSUER in text  # every NHS API is the emulator: the development issuer is trusted
    assert "MedicationRequest (via CPT); ServiceRequest (via e-RS)" in text
    assert "X-NHS-User-Token header" in text


def test_description_follows_a_custom_role_table(tmp_path: Path) -> None:
    policy = tmp_path / "roles.yaml"
    policy.write_text(CUSTOM_POLICY, encoding="utf-8")
    settings = Settings(access_policy=policy, relationship_required=False)
    text = rest_security(settings, {}, nhs_urls(settings))["description"]
    assert "- `ward-nurse` (NHS job roles R8001): read and search Observation; read Patient\n" in text
    assert "- `records`: the PAS endpoints (/pas/v1) for patients.read\n" in text
    assert "- `steward`: read Patient; create, read, update, delete and search every other type\n\n" in text
    assert "`clinician`" not in text
    assert "Clinical types (Observation)" in text
    assert "legitimate relationship" not in text  # relationship_required=false: not claimed
    smart = smart_configuration(settings, {}, registry(), nhs_urls(settings))
    assert smart["facade_roles"] == {
        "ward-nurse": {"fhir": {"Observation": "rs", "Patient": "r"}, "pas": [], "nhs_job_roles": ["R8001"]},
        "records": {"fhir": {}, "pas": ["patients.read"], "nhs_job_roles": []},
        "steward": {"fhir": {"Patient": "r", "*": "cruds"}, "pas": [], "nhs_job_roles": []},
    }
    assert smart["facade_purpose_of_use"]["clinical_types"] == ["Observation"]
    assert smart["facade_relationship_required"] is False


def test_no_user_restricted_type_says_no_nhs_credential_is_needed() -> None:
    text = rest_security(Settings(), {"Patient": (("PDS", "application"),)}, nhs_urls(Settings()))["description"]
    assert "No resource type served here is user-restricted" in text
    assert "X-NHS-User-Token" not in text


def test_inbound_cis2_tokens_are_described_and_their_nhs_endpoints_published() -> None:
    settings = Settings(
        nhs_user_token_source="inbound",
        auth_issuer=ISSUER,
        auth_jwks_url=ISSUER + "/jwks",
        token_url="https://int.api.service.nhs.uk/oauth2/token",
        smart_authorize_url="https://int.api.service.nhs.uk/oauth2/authorize",
    )
    security = rest_security(settings, ACCESS, nhs_urls(settings))
    assert "as the bearer token itself" in security["description"]
    assert "X-NHS-User-Token" not in security["description"]
    assert {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]} == {
        "authorize": settings.smart_authorize_url,
        "token": settings.token_url,
    }
    validate_r4(in_statement(security))
    smart = smart_configuration(settings, ACCESS, registry(), nhs_urls(settings))
    assert smart["issuer"] == ISSUER and smart["jwks_uri"] == ISSUER + "/jwks"
    assert smart["token_endpoint"] == settings.token_url
    assert smart["grant_types_supported"] == ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"]
    assert smart["token_endpoint_auth_methods_supported"] == ["client_secret_post", "private_key_jwt"]
    assert smart["facade_nhs_user_token"] == "inbound"


def test_the_issuers_own_endpoints_win_and_are_published_as_a_pair() -> None:
    settings = Settings(
        nhs_user_token_source="inbound",
        token_url="https://int.api.service.nhs.uk/oauth2/token",
        smart_authorize_url="https://int.api.service.nhs.uk/oauth2/authorize",
        auth_token_url=ISSUER + "/token",
    )
    endpoints = auth_endpoints(settings)
    assert (endpoints.token, endpoints.authorize) == (ISSUER + "/token", None)
    smart = smart_configuration(settings, ACCESS, registry(), nhs_urls(settings))
    assert smart["token_endpoint"] == ISSUER + "/token" and "authorization_endpoint" not in smart
    assert "grant_types_supported" not in smart  # nothing known of another server's grants
    assert "token_endpoint_auth_methods_supported" not in smart


def test_nhs_endpoints_are_not_the_facades_when_the_user_token_comes_in_a_header() -> None:
    settings = Settings(
        token_url="https://int.api.service.nhs.uk/oauth2/token",
        smart_authorize_url="https://int.api.service.nhs.uk/oauth2/authorize",
    )
    assert "extension" not in rest_security(settings, ACCESS, nhs_urls(settings))
    assert "token_endpoint" not in smart_configuration(settings, ACCESS, registry(), nhs_urls(settings))


def test_the_development_issuer_is_never_claimed_against_production() -> None:
    forced = Settings(dev_issuer="on", pds_base_url=PRODUCTION_PDS, auth_issuer=ISSUER, auth_jwks_url=ISSUER + "/j")
    assert trusted_issuer_names(forced, nhs_urls(forced)) == [ISSUER]  # wiring refuses to start: nothing to publish
    assert DEV_ISSUER not in rest_security(forced, ACCESS, nhs_urls(forced))["description"]
    smart = smart_configuration(forced, ACCESS, registry(), nhs_urls(forced))
    assert smart["facade_dev_issuer"] is False and smart["issuer"] == ISSUER
    off = Settings(dev_issuer="off", auth_issuer=ISSUER, auth_jwks_url=ISSUER + "/j")
    assert trusted_issuer_names(off, nhs_urls(off)) == [ISSUER]
    sandbox = Settings()
    assert trusted_issuer_names(sandbox, nhs_urls(sandbox)) == [DEV_ISSUER]
    assert smart_configuration(sandbox, ACCESS, registry(), nhs_urls(sandbox))["issuer"] == DEV_ISSUER


# ---- SMART configuration ----------------------------------------------------------------------


def test_scopes_supported_come_from_the_registry() -> None:
    reg = registry(PatientFromPDS(None), DeviceReadOnly(), NothingReadable())  # type: ignore[arg-type]
    assert scopes_supported(reg) == [
        "patient/Device.r",
        "user/Device.r",
        "system/Device.r",
        "patient/Patient.rs",
        "user/Patient.rs",
        "system/Patient.rs",
        "patient/*.rs",
        "user/*.rs",
        "system/*.rs",
    ]
    assert scopes_supported(registry()) == []


def test_smart_without_a_token_endpoint_claims_permissions_only() -> None:
    smart = smart_configuration(Settings(), ACCESS, registry(PatientFromPDS(None)), [])  # type: ignore[arg-type]
    assert smart["capabilities"] == PERMISSION_CAPABILITIES
    assert "token_endpoint" not in smart and "grant_types_supported" not in smart
    assert smart["code_challenge_methods_supported"] == []
    assert smart["facade_user_restricted_types"] == ["MedicationRequest", "ServiceRequest"]
    assert smart["facade_token_handling"] == "pass-through"
    assert smart["facade_nhs_user_token"] == "header X-NHS-User-Token"
    assert smart["facade_scope_query_suffixes"] == "refused"
    assert smart["facade_dev_issuer"] is True
    assert smart["facade_purpose_of_use"] == {
        "header": "X-Purpose-Of-Use",
        "claim": "purpose_of_use",
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        "clinical_types": ["AllergyIntolerance", "MedicationRequest", "ServiceRequest"],
        "clinical_purposes": ["ETREAT", "TREAT"],
        "break_glass_purposes": ["ETREAT"],
    }
    assert set(smart["facade_roles"]) == set(role_table(Settings()).roles)
    assert smart["facade_roles"]["auditor"]["fhir"] == {"AuditEvent": "rs"}


@pytest.mark.parametrize("authorize", [None, ISSUER + "/authorize"])
def test_smart_client_capabilities_only_with_a_token_endpoint(authorize: str | None) -> None:
    smart = smart_configuration(
        Settings(auth_token_url=ISSUER + "/token", auth_authorize_url=authorize), ACCESS, registry(), []
    )
    launch = ["launch-standalone"] if authorize else []
    assert smart["capabilities"] == [
        *launch,
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        *PERMISSION_CAPABILITIES,
    ]
    assert ("authorization_endpoint" in smart) == bool(authorize)
    assert smart.get("grant_types_supported") == (["authorization_code"] if authorize else None)


# ---- OpenAPI ----------------------------------------------------------------------------------


def header_names(doc: dict[str, Any], path: str) -> set[str]:
    return {p["name"] for p in doc["paths"][path]["get"]["parameters"] if p["in"] == "header"}


@pytest.mark.parametrize("source", ["header", "inbound"])
def test_openapi_documents_the_access_headers_each_operation_reads(tmp_path: Path, source: str) -> None:
    policy = tmp_path / "roles.yaml"
    policy.write_text(
        CUSTOM_POLICY.replace("clinical_types: [Observation]", "clinical_types: [Device]"), encoding="utf-8"
    )
    settings = Settings(access_policy=policy, nhs_user_token_source=source)
    reg = registry(PatientFromPDS(None), DeviceReadOnly())  # type: ignore[arg-type]
    doc = openapi_document(reg, settings, "http://facade.test", {"Patient": (("PDS", "user"),)}, nhs_urls(settings))
    pytest.importorskip("openapi_spec_validator").validate(doc)
    user_token = {"X-NHS-User-Token"} if source == "header" else set()
    assert header_names(doc, "/Patient/{id}") == {"If-None-Match"} | user_token
    assert header_names(doc, "/Device/{id}") == {"If-None-Match", "X-Purpose-Of-Use"}
    [purpose] = [p for p in doc["paths"]["/Device/{id}"]["get"]["parameters"] if p["name"] == "X-Purpose-Of-Use"]
    assert purpose["schema"]["enum"] == ["ETREAT", "TREAT"]
    assert doc["paths"]["/Device/{id}"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/metadata"]["get"]["security"] == []
    assert "401" not in doc["paths"]["/metadata"]["get"]["responses"]
    assert {"401", "403", "429", "503"} <= set(doc["paths"]["/Device/{id}"]["get"]["responses"])
