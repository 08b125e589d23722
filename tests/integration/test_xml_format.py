"""FHIR XML over real sockets (issue 10): every FHIR answer and error, in XML when asked.

Each XML body is parsed back through the R4B model (CheckedClient with xml=True) and must
equal the JSON answer to the same request, as R4 values: both sides go through the model,
which writes `+00:00` as `Z` in JSON (the XML keeps the text it was given)."""

from __future__ import annotations

import gzip
from typing import Any

import aiohttp
import orjson
from fhir.resources.R4B import get_fhir_model_class

from tests.support.access import AUDITOR, CPT_PRACTITIONER, auth
from tests.support.checked_client import FHIR_JSON_UTF8, FHIR_XML_UTF8, Answer, CheckedClient
from tests.support.emulator_control import inject
from tests.support.servers import Emulator, running_facade
from tests.support.tokens import bearer

XML = {"Accept": "application/fhir+xml"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def as_r4(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as the R4B model writes it: the form both answers are compared in."""
    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    normal: dict[str, Any] = model.model_dump(mode="json")
    return normal


def same_resource(xml: Answer, json: Answer) -> None:
    assert xml.status == json.status, (xml.status, json.status)
    assert comparable(as_r4(xml.body)) == comparable(as_r4(json.body))


def comparable(resource: dict[str, Any]) -> dict[str, Any]:
    """A searchset without what each answer mints anew (its id, times and the urn:uuid
    fullUrl of an outcome entry), else unchanged."""
    if resource["resourceType"] != "Bundle":
        return resource
    kept = {k: v for k, v in resource.items() if k not in ("id", "meta", "timestamp")}
    if "entry" in kept:
        kept["entry"] = [
            {k: v for k, v in e.items() if not (k == "fullUrl" and v.startswith("urn:uuid:"))} for e in kept["entry"]
        ]
    return kept


def vary(answer: Answer) -> list[str]:
    return [v.strip().lower() for value in answer.headers.getall("Vary", []) for v in value.split(",")]


async def test_a_read_in_xml_is_the_json_read(fhir: CheckedClient) -> None:
    json = await fhir.get("/Patient/9000000009")
    for path, headers in (
        ("/Patient/9000000009", XML),
        ("/Patient/9000000009", {"Accept": "application/xml"}),
        ("/Patient/9000000009", {"Accept": "application/fhir+xml;q=0.9, application/fhir+json;q=0.5"}),
        ("/Patient/9000000009?_format=xml", {}),
        ("/Patient/9000000009?_format=text/xml", {}),
        ("/Patient/9000000009?_format=application/fhir%2Bxml", {}),
        ("/Patient/9000000009?_format=application/fhir+xml", {}),  # unencoded '+': a space on arrival
        ("/Patient/9000000009?_format=xml", {"Accept": "application/fhir+json"}),  # _format wins
    ):
        xml = await fhir.get(path, headers=headers, xml=True)
        same_resource(xml, json)
        assert xml.raw.startswith(b"<?xml") and b'<Patient xmlns="http://hl7.org/fhir">' in xml.raw, path
        for name in ("ETag", "Last-Modified"):
            assert xml.headers[name] == json.headers[name], (path, name)
        assert "accept" in vary(xml) and "authorization" in vary(xml)
        assert xml.headers["Cache-Control"] == "no-store"
    assert "accept" in vary(json)  # the JSON answer varies on Accept too: a cache must not mix them
    pretty = await fhir.get("/Patient/9000000009?_format=xml&_pretty=true", xml=True)
    assert b"\n  <id " in pretty.raw and as_r4(pretty.body) == as_r4(json.body)
    assert b"\n" not in (await fhir.get("/Patient/9000000009", headers=XML, xml=True)).raw.split(b"?>", 1)[1].strip()


async def test_json_stays_the_default(fhir: CheckedClient) -> None:
    for accept in ("*/*", "application/fhir+json, application/fhir+xml", "application/json;q=0.9, text/xml;q=0.1"):
        answer = await fhir.get("/Patient/9000000009", headers={"Accept": accept})
        assert answer.status == 200, accept


async def test_a_searchset_with_includes_and_a_warning_in_xml(
    fhir: CheckedClient, http: aiohttp.ClientSession, emulator: Emulator
) -> None:
    path = "/MedicationRequest?patient=9000000009&_include=MedicationRequest:patient"
    answers = []
    for xml in (False, True):
        # One prescription's detail call fails: the Bundle carries a warning outcome entry.
        await inject(
            http,
            emulator,
            path_prefix="/clinical-prescription-tracker/RequestGroup/A1F3C2-A83008-4B7E1K",
            status=404,
            times=1,
            body={"resourceType": "OperationOutcome", "issue": [{"code": "not-found", "severity": "error"}]},
        )
        headers = {**CPT_PRACTITIONER, **(XML if xml else {})}
        answers.append(await fhir.get(path, headers=headers, xml=xml))
    json, xml = answers
    assert xml.status == 200 and xml.body["type"] == "searchset"
    modes = {e["search"]["mode"] for e in xml.body["entry"]}
    assert modes == {"match", "include", "outcome"}, modes
    outcome = next(e["resource"] for e in xml.body["entry"] if e["search"]["mode"] == "outcome")
    assert outcome["issue"][0]["severity"] == "warning"
    same_resource(xml, json)


async def test_a_post_search_form_asks_for_xml(fhir: CheckedClient) -> None:
    json = await fhir.post("/Patient/_search", data="family=Smith&birthdate=2010-10-22", headers=FORM)
    xml = await fhir.post(
        "/Patient/_search", data="family=Smith&birthdate=2010-10-22&_format=xml&_pretty=true", headers=FORM, xml=True
    )
    assert b"\n  <" in xml.raw
    same_resource(xml, json)


async def test_the_capability_statement_in_xml(fhir: CheckedClient) -> None:
    json = await fhir.get("/metadata", anonymous=True)
    xml = await fhir.get("/metadata?_format=xml", anonymous=True, xml=True)
    same_resource(xml, json)
    assert {"application/fhir+xml", "xml"} <= set(xml.body["format"])
    terse = await fhir.get("/metadata?mode=terse", headers=XML, anonymous=True, xml=True)
    assert "SUBSETTED" in [t["code"] for t in terse.body["meta"]["tag"]]


async def test_errors_are_outcomes_in_xml(fhir: CheckedClient) -> None:
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("GET", "/Patient/9111231130", {}, 404, "not-found"),  # unknown id
        ("GET", "/Observation/1", {}, 404, "not-found"),  # unknown type
        ("GET", "/no/such/path/here", {}, 404, "not-found"),  # the framework's 404
        ("GET", "/Patient/bad_id!", {}, 400, "invalid"),
        ("GET", "/Patient?birthdate=notadate", {}, 400, "value"),
        ("DELETE", "/Patient/9000000009", {}, 405, "not-supported"),
        ("GET", "/Patient/9000000009", {"anonymous": True}, 401, "login"),
        ("GET", "/Patient/9000000009", {"headers": {"Authorization": "Bearer nonsense"}}, 401, "login"),
        ("GET", "/Patient?family=" + "a" * 9000, {}, 414, "too-costly"),
        (
            "POST",
            "/Patient/_search",
            {"data": "<Parameters/>", "headers": {"Content-Type": "application/fhir+xml"}},
            415,
            "",
        ),
    ]
    for method, path, kwargs, status, code in cases:
        headers = {**XML, **kwargs.pop("headers", {})}
        xml = await fhir.request(method, path, headers=headers, xml=True, **kwargs)
        assert xml.status == status, (path, xml.status, xml.body)
        assert xml.body["resourceType"] == "OperationOutcome"
        if code:
            assert xml.issue["code"] == code, (path, xml.body)
        json = await fhir.request(method, path, headers=headers | {"Accept": "application/fhir+json"}, **kwargs)
        same_resource(xml, json)
        if status == 401:
            assert xml.headers["WWW-Authenticate"].startswith("Bearer")
        if status == 405:
            assert "GET" in xml.headers["Allow"]


async def test_a_format_not_produced_is_406_in_json(fhir: CheckedClient) -> None:
    for path, headers in (("/Patient/9000000009?_format=html", XML), ("/Patient/9000000009", {"Accept": "text/html"})):
        answer = await fhir.get(path, headers=headers)  # CheckedClient: FHIR JSON
        assert answer.status == 406 and answer.issue["code"] == "not-supported"


async def test_oversized_bodies_are_413_in_xml(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with running_facade(emulator, max_body_bytes=2048) as url:
        fhir = CheckedClient(url, http)
        answer = await fhir.post("/Patient/_search", data=b"family=" + b"a" * 5000, headers={**FORM, **XML}, xml=True)
        assert answer.status == 413 and answer.issue["code"] == "too-costly"


async def test_conditional_head_and_gzip_in_xml(fhir: CheckedClient, http: aiohttp.ClientSession) -> None:
    read = await fhir.get("/Patient/9000000009", headers=XML, xml=True)
    again = await fhir.get("/Patient/9000000009", headers={**XML, "If-None-Match": read.headers["ETag"]}, xml=True)
    assert again.status == 304 and again.raw == b""
    head = await fhir.request("HEAD", "/Patient/9000000009", headers=XML, xml=True)
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(read.raw)
    path = "/AllergyIntolerance?patient=9000000009&clinical-status=active,resolved&_include=AllergyIntolerance:patient"
    async with http.get(
        fhir.base_url + path, headers={**XML, "Accept-Encoding": "gzip", **bearer()}, auto_decompress=False
    ) as resp:
        raw = await resp.read()
        assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"] == FHIR_XML_UTF8
    assert gzip.decompress(raw).startswith(b"<?xml")


async def test_what_is_not_fhir_stays_json(fhir: CheckedClient, http: aiohttp.ClientSession) -> None:
    """The discovery documents and the health check ignore Accept (they are plain JSON, not
    FHIR resources, as before); PAS REST answers in its own JSON shape."""
    for path in ("/openapi.json", "/.well-known/smart-configuration", "/_health"):
        async with http.get(fhir.base_url + path, headers=XML) as resp:
            assert resp.status == 200, path
            assert resp.headers["Content-Type"].startswith("application/json"), path
            orjson.loads(await resp.read())
    async with http.get(fhir.base_url + "/pas/v1/patients/NOSUCH1", headers={**XML, **bearer()}) as resp:
        assert resp.headers["Content-Type"].startswith("application/json") and resp.status >= 400
        orjson.loads(await resp.read())
    async with http.get(fhir.base_url + "/pas/v1/patients/NOSUCH1", headers=XML) as resp:
        assert resp.status == 401 and resp.headers["Content-Type"] == FHIR_JSON_UTF8  # the access edge: JSON too


async def test_subsetted_views_and_the_audit_trail_in_xml(fhir: CheckedClient) -> None:
    """Every view a read or search can give still validates, so it can be written as XML."""
    for path, headers in (
        ("/Patient/9000000009?_summary=true", {}),
        ("/Patient/9000000009?_elements=name", {}),
        ("/Patient?family=Smith&birthdate=2010-10-22&_summary=count", {}),
        ("/Patient?family=Smith&birthdate=2010-10-22&_elements=birthDate", {}),
        ("/AllergyIntolerance?patient=9000000009&_summary=true", {}),
        ("/ServiceRequest?patient=9000000009&_elements=status", {}),
        ("/MedicationRequest?patient=9000000009&_summary=data", CPT_PRACTITIONER),
    ):
        json = await fhir.get(path, headers=headers)
        xml = await fhir.get(path, headers={**headers, **XML}, xml=True)
        assert json.status == 200, (path, json.body)
        same_resource(xml, json)
    # The trail grows with every request (these included), so no JSON twin to compare with.
    trail = await fhir.get("/AuditEvent?_lastUpdated=ge2000-01-01&_count=5", headers={**auth(AUDITOR), **XML}, xml=True)
    assert trail.status == 200 and trail.body["total"] > 0
    assert {e["resource"]["resourceType"] for e in trail.body["entry"]} == {"AuditEvent"}
