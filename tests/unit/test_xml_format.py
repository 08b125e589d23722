"""The FHIR XML edge (server/fhir/xml_format.py) without a server: the serialiser, and the
middleware driven as a plain ASGI app (what it converts, what it leaves alone, and the
406 when a body cannot be written as XML)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from server.fhir.outcome import issue, operation_outcome
from server.fhir.xml_format import (
    FHIR_XML_UTF8,
    XMLFormatMiddleware,
    XMLUnavailable,
    json_body_to_xml,
    resource_from_xml,
    resource_to_xml,
)
from server.sources.pds.emulator_data import PATIENTS

PATIENT = PATIENTS["9000000009"]


def test_a_patient_round_trips() -> None:
    xml = resource_to_xml(PATIENT)
    assert xml.startswith(b"<?xml") and b'<Patient xmlns="http://hl7.org/fhir">' in xml
    assert resource_from_xml(xml) == resource_from_xml(resource_to_xml(resource_from_xml(xml)))
    assert resource_from_xml(xml)["name"] == PATIENT["name"]


def test_pretty_is_indented_and_the_same_resource() -> None:
    plain, pretty = resource_to_xml(PATIENT), resource_to_xml(PATIENT, pretty=True)
    assert b"\n  <" in pretty and b"\n  <" not in plain
    assert resource_from_xml(plain) == resource_from_xml(pretty)


def test_text_is_escaped_never_markup() -> None:
    outcome = operation_outcome(issue("value", "a <b> & \"c\" 'd' ]]> </OperationOutcome>"))
    xml = resource_to_xml(outcome)
    assert b"<b>" not in xml and resource_from_xml(xml) == outcome


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"no": "resourceType"}',
        b'{"resourceType": "NoSuchType"}',
        b'{"resourceType": "Patient", "birthDate": "not-a-date"}',
        b'{"resourceType": "Patient", "name": [{"family": "a\\u0001b"}]}',  # XML 1.0 cannot carry \x01
    ],
)
def test_what_is_not_an_r4_resource_is_xml_unavailable(body: bytes) -> None:
    with pytest.raises(XMLUnavailable):
        json_body_to_xml(body)


def test_an_outcome_quoting_control_characters_keeps_its_text_otherwise() -> None:
    """A 400 that quotes a client's control character stays a 400 in XML: U+FFFD stands in."""
    body = orjson.dumps(operation_outcome(issue("value", "'a\x01b' is not a FHIR date")))
    back = resource_from_xml(json_body_to_xml(body))
    assert back["issue"][0]["diagnostics"] == "'a\ufffdb' is not a FHIR date"


def test_validation_errors_name_where_not_what() -> None:
    with pytest.raises(XMLUnavailable) as caught:
        json_body_to_xml(b'{"resourceType": "Patient", "birthDate": "SECRET-VALUE"}')
    assert "birthDate" in str(caught.value) and "SECRET" not in str(caught.value)


# -- the middleware --------------------------------------------------------------------------


def app_answering(status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        half = len(body) // 2  # in two chunks, as a streamed body would come
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        await send({"type": "http.response.body", "body": body[half:]})

    return app


async def call(
    app: Any,
    path: str = "/Patient/1",
    query: bytes = b"",
    accept: str | None = None,
    state: dict[str, Any] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [(b"accept", accept.encode())] if accept else [],
        "state": state or {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, bodies = sent[0], sent[1:]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in bodies)


FHIR_JSON = "application/fhir+json; charset=utf-8"
PATIENT_BODY = orjson.dumps(PATIENT)


async def test_json_is_left_as_it_is_but_varies_on_accept() -> None:
    app = XMLFormatMiddleware(app_answering(200, PATIENT_BODY, FHIR_JSON, {"ETag": 'W/"2"'}))
    status, headers, body = await call(app)
    assert (status, body, headers["content-type"]) == (200, PATIENT_BODY, FHIR_JSON)
    assert headers["vary"] == "Accept"


@pytest.mark.parametrize(
    "query, accept, state",
    [
        (b"", "application/fhir+xml", None),
        (b"_format=xml", None, None),
        (b"_format=html", "application/fhir+xml", None),  # the 406 answer: JSON (as below), the rest XML
        (b"", None, {"fhir_format": "xml", "fhir_pretty": False}),  # what the handler negotiated wins
    ],
)
async def test_xml_when_asked(query: bytes, accept: str | None, state: dict[str, Any] | None) -> None:
    app = XMLFormatMiddleware(app_answering(200, PATIENT_BODY, FHIR_JSON, {"ETag": 'W/"2"'}))
    status, headers, body = await call(app, query=query, accept=accept, state=state)
    if query == b"_format=html":
        assert headers["content-type"] == FHIR_JSON
        return
    assert status == 200 and headers["content-type"] == FHIR_XML_UTF8
    assert headers["content-length"] == str(len(body)) and headers["etag"] == 'W/"2"'
    assert resource_from_xml(body) == resource_from_xml(resource_to_xml(PATIENT))


async def test_the_handlers_choice_beats_the_query() -> None:
    app = XMLFormatMiddleware(app_answering(200, PATIENT_BODY, FHIR_JSON))
    state = {"fhir_format": "json", "fhir_pretty": False}
    _, headers, _ = await call(app, query=b"_format=xml", state=state)
    assert headers["content-type"] == FHIR_JSON


async def test_a_body_xml_cannot_carry_is_a_406_outcome_in_xml() -> None:
    bad = orjson.dumps({"resourceType": "Patient", "id": "1", "birthDate": "1990-13-45"})
    app = XMLFormatMiddleware(app_answering(200, bad, FHIR_JSON, {"ETag": 'W/"1"', "Last-Modified": "x"}))
    status, headers, body = await call(app, accept="application/fhir+xml")
    assert status == 406 and headers["content-type"] == FHIR_XML_UTF8
    assert "etag" not in headers and "last-modified" not in headers
    outcome = resource_from_xml(body)
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "not-supported"
    assert "_format=json" in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/openapi.json", "application/json"),  # not FHIR: its media type says so
        ("/_health", "application/json"),
        ("/pas/v1/patients/H1", FHIR_JSON),  # the PAS mount: JSON, whatever it answers
    ],
)
async def test_what_is_not_fhir_is_never_converted(path: str, content_type: str) -> None:
    app = XMLFormatMiddleware(app_answering(200, b'{"a": 1}', content_type), json_only=("/pas/v1/",))
    status, headers, body = await call(app, path=path, accept="application/fhir+xml")
    assert (status, body, headers["content-type"]) == (200, b'{"a": 1}', content_type)


async def test_not_modified_has_no_body_and_the_xml_type() -> None:
    async def not_modified(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 304, "headers": [(b"content-type", FHIR_JSON.encode())]})
        await send({"type": "http.response.body", "body": b""})

    status, headers, body = await call(XMLFormatMiddleware(not_modified), accept="application/fhir+xml")
    assert (status, body, headers["content-type"]) == (304, b"", FHIR_XML_UTF8)
    assert "content-length" not in headers
