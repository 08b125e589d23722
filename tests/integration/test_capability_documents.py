"""rest.security, /.well-known/smart-configuration and /openapi.json over real sockets:
what they claim comes from the registry and the wiring's access modes."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from server.providers.catalogue import DEFAULT_PROVIDERS, Wiring, patient_from_pds
from server.providers.base import ResourceProvider
from tests.support.checked_client import CheckedClient
from tests.support.nhs_auth import API_KEY, KID, auth_key_pair, register_client
from tests.support.servers import Emulator, running_facade

SECURITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
UBRN = "https://fhir.nhs.uk/Id/UBRN"


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any, Any]:
    async with http.get(url) as resp:
        return resp.status, resp.headers, await resp.json(content_type=None)


async def security_of(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    statement = (await CheckedClient(url, http).get("/metadata")).body
    return statement["rest"][0]["security"]


def codes(security: dict[str, Any]) -> set[str]:
    return {c["code"] for s in security["service"] for c in s["coding"] if c["system"] == SECURITY_SYSTEM}


# ---- rest.security and SMART ------------------------------------------------------------


async def test_security_names_the_user_restricted_types_the_wiring_built(emulator: Emulator,
                                                                        http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, token_url=emulator.token_url,
                              smart_authorize_url="https://nhs.example/oauth2/authorize") as url:
        security = await security_of(http, url)
        status, headers, smart = await get_json(http, url + "/.well-known/smart-configuration")
    assert codes(security) == {"OAuth", "SMART-on-FHIR"}
    # CPT is user-restricted, and e-RS (UBRN searches) in its default user-restricted mode.
    assert "MedicationRequest (via CPT)" in security["description"]
    assert "ServiceRequest (via e-RS)" in security["description"]
    assert "Patient" not in security["description"].split(":")[1]  # PDS is application-restricted by default
    [oauth] = security["extension"]
    assert {e["url"]: e["valueUri"] for e in oauth["extension"]} == {
        "authorize": "https://nhs.example/oauth2/authorize", "token": emulator.token_url}
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert smart["token_endpoint"] == emulator.token_url
    assert smart["authorization_endpoint"] == "https://nhs.example/oauth2/authorize"
    assert "launch-standalone" in smart["capabilities"] and "authorization_code" in smart["grant_types_supported"]
    assert smart["facade_user_restricted_types"] == ["MedicationRequest", "ServiceRequest"]
    assert smart["facade_token_handling"] == "pass-through"
    assert "S256" not in smart["code_challenge_methods_supported"]  # not claimed for a server we do not run


async def test_access_modes_in_settings_change_what_is_published(emulator: Emulator,
                                                                 http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, token_url=emulator.token_url, pds_access="user",
                              ers_access_mode="application-restricted", user_token_mode="exchange") as url:
        security = await security_of(http, url)
        _, _, smart = await get_json(http, url + "/.well-known/smart-configuration")
    assert "Patient (via PDS)" in security["description"]
    assert "ServiceRequest" not in security["description"]
    assert smart["facade_user_restricted_types"] == ["MedicationRequest", "Patient"]
    assert smart["facade_token_handling"] == "exchange" and "authorization_endpoint" not in smart
    assert smart["capabilities"] == ["client-confidential-symmetric", "client-confidential-asymmetric"]


async def test_gp_connect_through_the_gateway_is_published_as_user_restricted(emulator: Emulator,
                                                                               http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, token_url=emulator.token_url, gpconnect_auth_mode="gateway") as url:
        _, _, smart = await get_json(http, url + "/.well-known/smart-configuration")
    assert "AllergyIntolerance" in smart["facade_user_restricted_types"]


async def test_without_a_token_url_no_smart_document_is_claimed(fhir: CheckedClient,
                                                                http: aiohttp.ClientSession) -> None:
    security = (await fhir.get("/metadata")).body["rest"][0]["security"]
    assert codes(security) == {"OAuth"} and "extension" not in security
    missing = await fhir.get("/.well-known/smart-configuration")
    assert missing.status == 404 and "FACADE_TOKEN_URL" in missing.issue["diagnostics"]


async def test_a_provider_that_wires_no_user_client_is_not_user_restricted(emulator: Emulator,
                                                                           http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, providers=(patient_from_pds,)) as url:
        security = await security_of(http, url)
    assert security["description"].startswith("No resource type served here is user-restricted")


async def test_ers_application_restricted_needs_no_user_token(emulator: Emulator,
                                                              http: aiohttp.ClientSession) -> None:
    """Bug fixed: e-RS was wired user-restricted even in application-restricted mode, so with
    signed-JWT auth a STU3 UBRN search without a caller token was a 401."""
    await register_client(http, emulator.url)
    async with running_facade(emulator, auth_mode="signed-jwt", api_key=API_KEY, key_id=KID,
                              private_key=auth_key_pair().private_pem.decode(), token_url=emulator.token_url,
                              ers_access_mode="application-restricted") as url:
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
        openapi: tuple[dict[str, Any], dict[str, Any]]) -> None:
    doc, statement = openapi
    paths = doc["paths"]
    resources = statement["rest"][0]["resource"]
    assert len(resources) == 4
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
        assert set(by_name["_include"]["schema"]["items"]["enum"]) == set(resource.get("searchInclude", [])) \
            if "_include" in by_name else not resource.get("searchInclude")
        if resource.get("searchRevInclude"):
            assert set(by_name["_revinclude"]["schema"]["items"]["enum"]) == set(resource["searchRevInclude"])
        for op in (search, post, paths[f"/{rtype}/{{id}}"]["get"]):
            assert op["responses"]["404"]["$ref"] == "#/components/responses/Error404"
    assert doc["components"]["responses"]["Error400"]["content"]["application/fhir+json"]["schema"] == \
        {"$ref": "#/components/schemas/OperationOutcome"}


def test_openapi_security_follows_the_wiring(openapi: tuple[dict[str, Any], dict[str, Any]]) -> None:
    doc, _ = openapi
    restricted = {t for t in ("Patient", "MedicationRequest", "ServiceRequest", "AllergyIntolerance")
                  if doc["paths"][f"/{t}"]["get"]["security"]}
    assert restricted == {"MedicationRequest", "ServiceRequest"}


async def test_openapi_follows_a_registry_with_an_extra_type(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A provider registered is an operation documented: no hand-kept list to forget."""

    class DeviceFromNowhere(ResourceProvider):
        resource_type = "Device"
        interactions = ("read",)

        async def read(self, resource_id: str, ctx: Any) -> Any:
            raise AssertionError("not called")

    def device(_: Wiring) -> ResourceProvider:
        return DeviceFromNowhere()

    async with running_facade(emulator, providers=(*DEFAULT_PROVIDERS, device)) as url:
        _, _, doc = await get_json(http, url + "/openapi.json")
    assert "/Device/{id}" in doc["paths"] and "/Device" not in doc["paths"]
    assert "/Device/{id}/_history/{vid}" not in doc["paths"]
