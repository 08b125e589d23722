"""FHIR REST transport rules over real sockets: formats, framework errors, metadata."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import aiohttp
import orjson

from server.fhir.errors import NotFound
from server.fhir.search_params import SearchParamSpec
from server.providers.base import RequestContext, ResourceProvider
from server.sources.registry import SOURCES
from server.sources.wiring import Wiring
from tests.support.checked_client import CheckedClient
from tests.support.fhir_validation import validate_r4
from tests.support.servers import Emulator, running_facade
from tests.support.sources import source_of
from tests.support.tokens import bearer


async def test_format_negotiation(fhir: CheckedClient) -> None:
    ok = [
        ({"Accept": "application/json"}, ""),
        ({"Accept": "application/fhir+json; fhirVersion=4.0"}, ""),
        ({"Accept": "*/*"}, ""),
        ({}, "?_format=json"),
        ({}, "?_format=application/fhir%2Bjson"),
        ({"Content-Type": "application/json"}, ""),
    ]  # fhir.js sends a Content-Type on GET
    for headers, q in ok:
        answer = await fhir.get(f"/Patient/9000000009{q}", headers=headers)
        assert answer.status == 200, (headers, q)
    refused = [
        ({}, "?_format=html"),
        ({"Accept": "text/html"}, ""),
        ({}, "?_format=application/pdf"),
    ]  # XML is produced (tests/integration/test_xml_format.py)
    for headers, q in refused:
        answer = await fhir.get(f"/Patient/9000000009{q}", headers=headers)
        assert answer.status == 406, (headers, q)
        assert answer.issue["code"] == "not-supported"
    search = await fhir.get("/Patient?family=Smith&birthdate=2010&_format=html")
    assert search.status == 406


async def test_format_param_is_not_an_unknown_search_parameter(fhir: CheckedClient) -> None:
    answer = await fhir.get(
        "/Patient?family=Smith&birthdate=2010&_format=json&_pretty=true", headers={"Prefer": "handling=strict"}
    )
    assert answer.status == 200
    self_url = next(link["url"] for link in answer.body["link"] if link["relation"] == "self")
    assert "_format" not in self_url and "_pretty" not in self_url


async def test_unknown_types_and_paths_are_404_outcomes(fhir: CheckedClient) -> None:
    for path in (
        "/Observation",
        "/Observation/1",
        "/patient/9000000009",
        "/Patient/9000000009/extra/bits",
    ):  # `/` and `_history` are known endpoints: 501 (test_rest_interactions.py)
        answer = await fhir.get(path)
        assert answer.status == 404, path
        assert answer.issue["code"] == "not-found"


async def test_unsupported_methods_are_405_outcomes_with_allow(fhir: CheckedClient) -> None:
    for method, path in (
        ("POST", "/Patient"),
        ("DELETE", "/Patient/9000000009"),
        ("PUT", "/Patient/9000000009"),
        ("PATCH", "/Patient/9000000009"),
        ("POST", "/metadata"),
    ):
        answer = await fhir.request(method, path, json={"resourceType": "Patient"})
        assert answer.status == 405, (method, path)
        assert answer.issue["code"] == "not-supported"
        assert "GET" in answer.headers["Allow"]


async def test_metadata(fhir: CheckedClient) -> None:
    full = await fhir.get("/metadata")
    assert full.status == 200
    cs = full.body
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    assert cs["implementation"]["url"] == fhir.base_url
    (patient,) = [r for r in cs["rest"][0]["resource"] if r["type"] == "Patient"]
    assert "documentation" in patient
    for q in ("?_summary=true", "?mode=terse"):
        terse = await fhir.get("/metadata" + q)
        assert terse.status == 200
        assert "SUBSETTED" in [t["code"] for t in terse.body["meta"]["tag"]]
        (tp,) = [r for r in terse.body["rest"][0]["resource"] if r["type"] == "Patient"]
        assert "documentation" not in tp
    assert (await fhir.get("/metadata?mode=everything")).status == 400
    assert (await fhir.get("/metadata?_format=html")).status == 406


class ExtraProvider(ResourceProvider):
    """A provider that exists only in this test: registering it must be the only step."""

    resource_type: ClassVar[str] = "Device"
    profile: ClassVar[str | None] = "https://example.org/StructureDefinition/TestDevice"
    interactions: ClassVar[tuple[str, ...]] = ("read",)
    search_params: ClassVar[tuple[SearchParamSpec, ...]] = (
        SearchParamSpec("serial", "token", "Serial number", "http://example.org/sp/serial"),
    )

    async def read(self, resource_id: str, ctx: RequestContext) -> dict[str, Any]:
        if resource_id != "dev-1":
            raise NotFound(f"Device/{resource_id} is not known")
        return {"resourceType": "Device", "id": "dev-1", "meta": {"versionId": "7"}}


def extra_provider(wiring: Wiring) -> ResourceProvider:
    return ExtraProvider()


async def test_a_registered_provider_appears_in_metadata_and_serves(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with running_facade(emulator) as url:
        before = (await CheckedClient(url, http).get("/metadata")).body
    default_types = {r["type"] for r in before["rest"][0]["resource"]}
    assert "Device" not in default_types and "Patient" in default_types
    async with running_facade(emulator, (*SOURCES, source_of("Device", extra_provider))) as url:
        fhir = CheckedClient(url, http)
        cs = (await fhir.get("/metadata")).body
        by_type = {r["type"]: r for r in cs["rest"][0]["resource"]}
        assert set(by_type) == default_types | {"Device"}
        assert by_type["Device"]["profile"] == ExtraProvider.profile
        assert by_type["Device"]["searchParam"][0]["name"] == "serial"
        device = await fhir.get("/Device/dev-1")
        assert device.status == 200 and device.headers["ETag"] == 'W/"7"'
        assert (await fhir.get("/Device/dev-2")).status == 404
        no_search = await fhir.get("/Device?serial=1")
        assert no_search.status == 501 and no_search.issue["code"] == "not-supported"
    async with running_facade(emulator) as url:
        cs = (await CheckedClient(url, http).get("/metadata")).body
        assert {r["type"] for r in cs["rest"][0]["resource"]} == default_types  # Device gone again


class CrashingProvider(ResourceProvider):
    """A provider with a bug: the façade must still answer with an OperationOutcome."""

    resource_type: ClassVar[str] = "Device"

    async def read(self, resource_id: str, ctx: RequestContext) -> dict[str, Any]:
        raise RuntimeError("secret patient detail Jane Smith 9000000009")


CRASH_ID = "0b7e8d0c-3c5e-4a57-9d0e-6f4f1c2a9e01"


async def test_an_unexpected_exception_is_a_500_outcome_without_details(
    emulator: Emulator, http: aiohttp.ClientSession, caplog: Any
) -> None:
    async with running_facade(emulator, (source_of("Device", lambda w: CrashingProvider()),)) as url:
        async with http.get(f"{url}/Device/1", headers={"X-Request-ID": CRASH_ID, **bearer()}) as resp:
            raw = await resp.read()
            assert resp.status == 500
            assert resp.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
            assert resp.headers["X-Request-ID"] == CRASH_ID
            assert resp.headers["Cache-Control"] == "no-store"  # like every other error
    body = orjson.loads(raw)
    validate_r4(body)
    assert body["issue"][0]["code"] == "exception" and CRASH_ID in body["issue"][0]["diagnostics"]
    assert b"Jane" not in raw and b"Traceback" not in raw and b"RuntimeError" not in raw
    assert all("Jane" not in r.getMessage() for r in caplog.records)


async def test_logs_carry_no_patient_data(fhir: CheckedClient, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    await fhir.get("/Patient/9000000009")
    await fhir.get("/Patient?family=Smith&birthdate=2010-10-22&address-postalcode=LS1")
    await fhir.get("/Patient/9000000000")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("facade")]
    assert any("type=Patient" in m for m in messages)  # the access log is there
    for secret in ("9000000009", "9000000000", "Smith", "2010-10-22", "LS1"):
        assert not any(secret in m for m in messages), secret
