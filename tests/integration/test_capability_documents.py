"""rest.security, /.well-known/smart-configuration and /openapi.json over real sockets:
what they claim comes from the registry, the settings, the role table and the wiring's
access modes. The discovery documents are public: fetched here without a token."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from capability.smart import PERMISSION_CAPABILITIES
from server.access.dev_issuer import DEV_ISSUER
from server.access.middleware import PUBLIC_PATHS
from server.access.roles import RoleTable, load_role_table
from server.providers.base import ResourceProvider
from server.sources.pds.source import SOURCE as PDS_SOURCE
from server.sources.registry import SOURCES
from server.sources.wiring import Wiring
from tests.support.checked_client import CheckedClient
from tests.support.nhs_auth import API_KEY, KID, auth_key_pair, register_client
from tests.support.servers import Emulator, running_facade
from tests.support.sources import source_of
from tests.support.tokens import facade_access_settings

SECURITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
UBRN = "https://fhir.nhs.uk/Id/UBRN"


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any, Any]:
    async with http.get(url) as resp:
        return resp.status, resp.headers, await resp.json(content_type=None)


async def security_of(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    statement = (await CheckedClient(url, http).get("/metadata", anonymous=True)).body
    return statement["rest"][0]["security"]


def codes(security: dict[str, Any]) -> set[str]:
    return {c["code"] for s in security["service"] for c in s["coding"] if c["system"] == SECURITY_SYSTEM}


def facade_role_table() -> RoleTable:
    """The role table the test façades load (running_facade's access settings)."""
    return load_role_table(facade_access_settings("http://127.0.0.1")["access_policy"])


def operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in doc["paths"].values() for op in item.values()]


class DeviceFromNowhere(ResourceProvider):
    resource_type = "Device"
    interactions = ("read",)

    async def read(self, resource_id: str, ctx: Any) -> Any:
        raise AssertionError("not called")


def device(_: Wiring) -> ResourceProvider:
    return DeviceFromNowhere()


# ---- rest.security and SMART ------------------------------------------------------------

IDP = "https://idp.hospital.example"


def restricted_listing(security: dict[str, Any]) -> str:
    """The user-restricted types of the description: 'Type (via API); ...', or '' when none."""
    paragraph = next(p for p in security["description"].split("\n\n") if "user-restricted" in p.lower())
    return paragraph.split(": ", 1)[1].split(". ", 1)[0] if paragraph.startswith("User-restricted") else ""


async def test_security_names_the_user_restricted_types_the_wiring_built(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(
        emulator,
        auth_token_url=IDP + "/token",
        auth_authorize_url=IDP + "/authorize",
        cors_allow_origins=["https://app.example"],
    ) as url:
        security = await security_of(http, url)
        status, headers, smart = await get_json(http, url + "/.well-known/smart-configuration")
    assert codes(security) == {"OAuth", "SMART-on-FHIR"} and security["cors"] is True
    # CPT is user-restricted, and e-RS (UBRN searches) in its default user-restricted mode;
    # PDS is application-restricted by default.
    assert restricted_listing(security) == "MedicationRequest (via CPT); ServiceRequest (via e-RS)"
    assert "X-NHS-User-Token header" in security["description"]
    [oauth] = security["extension"]
    assert {e["url"]: e["valueUri"] for e in oauth["extension"]} == {
        "authorize": IDP + "/authorize",
        "token": IDP + "/token",
    }
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert smart["token_endpoint"] == IDP + "/token" and smart["authorization_endpoint"] == IDP + "/authorize"
    assert smart["issuer"] == DEV_ISSUER and smart["facade_dev_issuer"] is True  # every NHS API is the emulator
    assert "launch-standalone" in smart["capabilities"] and "client-confidential-asymmetric" in smart["capabilities"]
    assert smart["grant_types_supported"] == ["authorization_code"]
    assert smart["facade_user_restricted_types"] == ["MedicationRequest", "ServiceRequest"]
    assert smart["facade_token_handling"] == "pass-through"
    assert smart["facade_nhs_user_token"] == "header X-NHS-User-Token"
    assert "S256" not in smart["code_challenge_methods_supported"]  # not claimed for a server we do not run


async def test_access_modes_in_settings_change_what_is_published(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(
        emulator,
        token_url=emulator.token_url,
        pds_access="user",
        ers_access_mode="application-restricted",
        user_token_mode="exchange",
    ) as url:
        security = await security_of(http, url)
        _, _, smart = await get_json(http, url + "/.well-known/smart-configuration")
    assert restricted_listing(security) == "MedicationRequest (via CPT); Patient (via PDS)"
    assert smart["facade_user_restricted_types"] == ["MedicationRequest", "Patient"]
    assert smart["facade_token_handling"] == "exchange"
    # The NHS token endpoint is where the façade gets its own NHS tokens, not the callers':
    # with the CIS2 credential in X-NHS-User-Token, no token endpoint is the façade's.
    assert "token_endpoint" not in smart and "extension" not in security
    assert smart["capabilities"] == PERMISSION_CAPABILITIES


async def test_inbound_cis2_tokens_publish_the_nhs_endpoints(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(
        emulator,
        token_url=emulator.token_url,
        nhs_user_token_source="inbound",
        smart_authorize_url="https://nhs.example/oauth2/authorize",
    ) as url:
        security = await security_of(http, url)
        _, _, smart = await get_json(http, url + "/.well-known/smart-configuration")
        _, _, doc = await get_json(http, url + "/openapi.json")
    assert "as the bearer token itself" in security["description"]
    assert smart["token_endpoint"] == emulator.token_url
    assert smart["grant_types_supported"] == ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"]
    assert smart["facade_nhs_user_token"] == "inbound"
    headers = {p["name"] for op in operations(doc) for p in op.get("parameters", []) if p["in"] == "header"}
    assert "X-NHS-User-Token" not in headers


async def test_gp_connect_through_the_gateway_is_published_as_user_restricted(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(emulator, token_url=emulator.token_url, gpconnect_auth_mode="gateway") as url:
        _, _, smart = await get_json(http, url + "/.well-known/smart-configuration")
    assert "AllergyIntolerance" in smart["facade_user_restricted_types"]


async def test_discovery_documents_are_public_and_always_served(
    fhir: CheckedClient, http: aiohttp.ClientSession
) -> None:
    statement = await fhir.get("/metadata", anonymous=True)
    assert statement.status == 200
    security = statement.body["rest"][0]["security"]
    assert codes(security) == {"OAuth", "SMART-on-FHIR"} and "extension" not in security
    assert security["cors"] is False
    status, _, smart = await get_json(http, fhir.base_url + "/.well-known/smart-configuration")
    assert status == 200
    assert "token_endpoint" not in smart and "authorization_endpoint" not in smart  # none known: none invented
    assert smart["capabilities"] == PERMISSION_CAPABILITIES
    assert smart["facade_scope_query_suffixes"] == "refused"


async def test_scopes_and_roles_follow_the_registry_and_the_role_table(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A provider registered is a scope published; a role in the table is a role described."""
    async with running_facade(emulator, sources=(*SOURCES, source_of("Device", device))) as url:
        security = await security_of(http, url)
        statement = (await CheckedClient(url, http).get("/metadata", anonymous=True)).body
        _, _, smart = await get_json(http, url + "/.well-known/smart-configuration")
    registered = {r["type"] for r in statement["rest"][0]["resource"]}
    assert "Device" in registered
    scoped = {s.split("/", 1)[1].split(".", 1)[0] for s in smart["scopes_supported"]}
    assert scoped == registered | {"*"}
    for rtype in registered | {"*"}:
        assert {
            s.split("/", 1)[0] for s in smart["scopes_supported"] if s.split("/", 1)[1].startswith(rtype + ".")
        } == {"patient", "user", "system"}
    assert "patient/Device.r" in smart["scopes_supported"]  # Device declares read only
    table = facade_role_table()
    for role in table.roles:
        assert f"`{role}`" in security["description"], role
    assert set(smart["facade_roles"]) == set(table.roles)
    assert smart["facade_purpose_of_use"]["clinical_purposes"] == sorted(table.clinical_purposes)


async def test_a_provider_that_wires_no_user_client_is_not_user_restricted(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(emulator, sources=(PDS_SOURCE,)) as url:
        security = await security_of(http, url)
    assert restricted_listing(security) == ""
    assert "No resource type served here is user-restricted" in security["description"]


async def test_ers_application_restricted_needs_no_user_token(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Bug fixed: e-RS was wired user-restricted even in application-restricted mode, so with
    signed-JWT auth a STU3 UBRN search without a caller token was a 401."""
    await register_client(http, emulator.url)
    async with running_facade(
        emulator,
        auth_mode="signed-jwt",
        api_key=API_KEY,
        key_id=KID,
        private_key=auth_key_pair().private_pem.decode(),
        token_url=emulator.token_url,
        ers_access_mode="application-restricted",
    ) as url:
        answer = await CheckedClient(url, http).get(f"/ServiceRequest?identifier={quote(UBRN)}|000000070000")
    assert answer.status == 200, answer.body
    assert answer.body["total"] == 1


# ---- OpenAPI ------------------------------------------------------------------------------


@pytest.fixture
async def openapi(emulator: Emulator, http: aiohttp.ClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
    async with running_facade(emulator) as url:
        status, headers, doc = await get_json(http, url + "/openapi.json")
        assert status == 200 and headers["Content-Type"].startswith("application/json") and headers["X-Request-ID"]
        statement = (await CheckedClient(url, http).get("/metadata")).body
    return doc, statement


def test_openapi_is_a_valid_openapi_3_document(openapi: tuple[dict[str, Any], dict[str, Any]]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(openapi[0])


def test_openapi_has_every_type_interaction_and_parameter_of_the_statement(
    openapi: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    doc, statement = openapi
    paths = doc["paths"]
    resources = statement["rest"][0]["resource"]
    assert (
        {"Patient", "MedicationRequest", "ServiceRequest", "AllergyIntolerance"}
        <= {r["type"] for r in resources}
        == {t["name"] for t in doc["tags"]}
    )
    for resource in resources:
        rtype = resource["type"]
        interactions = {i["code"] for i in resource["interaction"]}
        assert ("get" in paths.get(f"/{rtype}/{{id}}", {})) == ("read" in interactions)
        assert ("get" in paths.get(f"/{rtype}/{{id}}/_history/{{vid}}", {})) == ("vread" in interactions)
        search = paths[f"/{rtype}"]["get"]
        post = paths[f"/{rtype}/_search"]["post"]
        by_name = {p["name"]: p for p in search["parameters"]}
        form = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["properties"]
        for param in resource["searchParam"]:
            assert by_name[param["name"]]["x-fhir-type"] == param["type"], (rtype, param)
            assert param["name"] in form
        assert (
            set(by_name["_include"]["schema"]["items"]["enum"]) == set(resource.get("searchInclude", []))
            if "_include" in by_name
            else not resource.get("searchInclude")
        )
        if resource.get("searchRevInclude"):
            assert set(by_name["_revinclude"]["schema"]["items"]["enum"]) == set(resource["searchRevInclude"])
        for op in (search, post, paths[f"/{rtype}/{{id}}"]["get"]):
            assert op["responses"]["404"]["$ref"] == "#/components/responses/Error404"
    assert doc["components"]["responses"]["Error400"]["content"]["application/fhir+json"]["schema"] == {
        "$ref": "#/components/schemas/OperationOutcome"
    }


def test_openapi_security_follows_the_wiring(openapi: tuple[dict[str, Any], dict[str, Any]]) -> None:
    doc, statement = openapi
    assert doc["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": statement["rest"][0]["security"]["description"],
        }
    }
    for path, item in doc["paths"].items():
        for op in item.values():
            public = path in PUBLIC_PATHS
            assert op["security"] == ([] if public else [{"bearerAuth": []}]), path
            for status in ("401", "403"):
                assert (status in op["responses"]) == (not public), (path, status)
            assert {"429", "503"} <= set(op["responses"])
    assert {"/metadata", "/.well-known/smart-configuration", "/openapi.json"} <= set(doc["paths"])

    def header_on_read(name: str) -> set[str]:
        return {
            t
            for t in ("Patient", "MedicationRequest", "ServiceRequest", "AllergyIntolerance")
            if name in {p["name"] for p in doc["paths"][f"/{t}/{{id}}"]["get"]["parameters"]}
        }

    assert header_on_read("X-NHS-User-Token") == {"MedicationRequest", "ServiceRequest"}
    assert header_on_read("X-Purpose-Of-Use") == set(facade_role_table().clinical_types)
    # A Patient search can _revinclude MedicationRequest: its headers are documented there too.
    patient_search = {p["name"] for p in doc["paths"]["/Patient"]["get"]["parameters"]}
    assert {"X-NHS-User-Token", "X-Purpose-Of-Use"} <= patient_search
    assert doc["components"]["responses"]["Error401"]["headers"]["WWW-Authenticate"]


async def test_openapi_follows_a_registry_with_an_extra_type(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A provider registered is an operation documented: no hand-kept list to forget."""
    async with running_facade(emulator, sources=(*SOURCES, source_of("Device", device))) as url:
        _, _, doc = await get_json(http, url + "/openapi.json")
    assert "/Device/{id}" in doc["paths"] and "/Device" not in doc["paths"]
    assert "/Device/{id}/_history/{vid}" not in doc["paths"]
    assert doc["paths"]["/Device/{id}"]["get"]["security"] == [{"bearerAuth": []}]
