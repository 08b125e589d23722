"""FHIR XML (`application/fhir+xml`) at the edge: the serialiser and the middleware that uses it.

Handlers and every error path build dicts and render FHIR JSON with orjson, whatever was
asked. When a request asks for XML (server.fhir.formats: Accept or `_format`), this
middleware re-renders the final `application/fhir+json` body as XML through the
fhir.resources R4B model of its `resourceType`: no hand-written XML, and the JSON path
pays nothing but one header check. It sits outside everything that writes an error body
(the request-id middleware's 500, CORS, the access edge's 401/403/503, the size limits'
413/414, the exception handlers' 4xx/5xx), so errors come in the format asked too, and
inside GZip, which then compresses the XML. ETag, Last-Modified and Location stay as the
JSON answer had them (weak validators name the resource version, not its bytes);
`Vary: Accept` is added to every FHIR answer, so a cache never serves one format for the
other.

Which format: the one the handler negotiated (it records it in the request state, with
`_pretty`: a POST _search may carry both in its form body), else `_format` and Accept
read here, where a format that is not produced falls back to JSON (the 406 itself, and
errors raised before a handler ran).

Cost: validating into the models and serialising is pure Python, about 2-3 ms for a
Patient and 120 ms for a 50-entry Bundle (JSON: microseconds). So it runs in worker
threads, at most `workers` at once, and only for requests that ask for XML; a page is
bounded by `FACADE_MAX_PAGE_SIZE` and the include caps. A body the R4B model rejects
cannot be written as XML: that answer becomes a 406 OperationOutcome (in XML) telling the
client to ask for JSON, never a silent JSON body.

Not FHIR, so never converted: bodies of other media types (the discovery documents and
/_health are `application/json`), and the paths under `json_only` (the PAS REST mount,
whose records and errors are its own JSON). The façade takes no FHIR resource bodies (a
POST _search takes form data; anything else, XML included, is 415 there), so nothing here
parses XML from a client: `resource_from_xml` is the inverse, for round-trip checks.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl
from xml.etree.ElementTree import ParseError, fromstring

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.fhir.errors import NotAcceptable
from server.fhir.formats import XML, answer_format
from server.fhir.no_store import with_vary
from server.fhir.responses import FHIR_JSON, FHIR_XML

log = logging.getLogger("facade.xml")

FHIR_XML_UTF8 = f"{FHIR_XML}; charset=utf-8"
XML_WORKERS = 2  # conversions at once: each holds the GIL most of its time, more would only queue there
# Headers that describe the resource answered; a 406 in its place must not carry them.
_RESOURCE_HEADERS = ("etag", "last-modified", "location", "content-location")
# XML 1.0's Char production excludes these (and lone surrogates, which JSON may carry).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class XMLUnavailable(ValueError):
    """The body does not validate as an R4 resource, so the models cannot write it as XML."""


def _model_class(resource_type: object) -> type[FHIRAbstractModel]:
    if not isinstance(resource_type, str):
        raise XMLUnavailable("the body has no resourceType")
    try:
        return get_fhir_model_class(resource_type)
    except ValueError:
        raise XMLUnavailable(f"{resource_type[:64]!r} is not an R4 resource type") from None


def resource_to_xml(resource: Mapping[str, Any], *, pretty: bool = False) -> bytes:
    """One resource (a Bundle with its entries included) as FHIR XML, via its R4B model."""
    model_class = _model_class(resource.get("resourceType"))
    try:
        model = model_class.model_validate(resource)
    except ValidationError as exc:
        # Where, never what: the values are patient data.
        where = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        raise XMLUnavailable(f"not valid R4 at {', '.join(where[:5])}") from None
    try:
        xml: str | bytes = model.model_dump_xml(pretty_print=pretty)  # bytes, though annotated str
    except ValueError:  # lxml refuses text XML 1.0 cannot hold: control characters
        raise XMLUnavailable("text holds characters XML cannot carry (control characters)") from None
    return xml if isinstance(xml, bytes) else xml.encode()


def _xml_safe(value: Any) -> Any:
    """`value` with every character XML 1.0 cannot carry replaced by U+FFFD."""
    if isinstance(value, str):
        return _NOT_XML.sub("\ufffd", value)
    if isinstance(value, list):
        return [_xml_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _xml_safe(v) for k, v in value.items()}
    return value


def json_body_to_xml(body: bytes, pretty: bool = False) -> bytes:
    """A FHIR JSON body as FHIR XML; XMLUnavailable when it is not an R4 resource."""
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise XMLUnavailable("the body is not JSON") from None
    if not isinstance(resource, dict):
        raise XMLUnavailable("the body is not a JSON object")
    try:
        return resource_to_xml(resource, pretty=pretty)
    except XMLUnavailable:
        if resource.get("resourceType") != "OperationOutcome":
            raise
        # An error quoting what a client sent (a control character in a parameter, say) keeps
        # its status and text; only the characters XML cannot carry become U+FFFD.
        return resource_to_xml(_xml_safe(resource), pretty=pretty)


def _root_name(data: bytes) -> str:
    try:
        return fromstring(data).tag.rpartition("}")[2]  # {http://hl7.org/fhir}Patient
    except ParseError:
        raise XMLUnavailable("not well-formed XML") from None


def resource_from_xml(data: bytes) -> dict[str, Any]:
    """FHIR XML back to the resource dict (JSON form), via the R4B model its root names."""
    model = _model_class(_root_name(data)).model_validate_xml(data)
    resource: dict[str, Any] = model.model_dump(mode="json")
    return resource


def _transport_params(query: bytes) -> dict[str, str]:
    if b"_format" not in query and b"_pretty" not in query:  # nearly every request: skip the parse
        return {}
    pairs = parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v for k, v in pairs if k in ("_format", "_pretty")}


def requested_format(scope: Scope) -> tuple[str, bool]:
    """(format, pretty) for this request's answer: what the handler negotiated, if it ran,
    else what `_format`, `_pretty` and Accept ask (JSON when that is not produced)."""
    state = scope.get("state", {})
    fmt = state.get("fhir_format")
    pretty = state.get("fhir_pretty")
    if fmt is None or pretty is None:
        params = _transport_params(scope.get("query_string", b""))
        if fmt is None:
            accept = ", ".join(v.decode("latin-1") for k, v in scope["headers"] if k == b"accept") or None
            fmt = answer_format(params.get("_format"), accept)
        if pretty is None:
            pretty = params.get("_pretty", "").lower() == "true"
    return str(fmt), bool(pretty)


def _is_fhir_json(raw: list[tuple[bytes, bytes]]) -> bool:
    """Whether a response start's raw headers announce an uncompressed FHIR JSON body."""
    media = ""
    for key, value in raw:
        lowered = key.lower()
        if lowered == b"content-encoding":
            return False
        if lowered == b"content-type" and not media:
            media = value.decode("latin-1").split(";")[0].strip().lower()
    return media == FHIR_JSON


class XMLFormatMiddleware:
    """Answer in FHIR XML the requests that ask for it; add `Vary: Accept` to FHIR answers."""

    def __init__(self, app: ASGIApp, json_only: Sequence[str] = (), workers: int = XML_WORKERS) -> None:
        self.app = app
        self.json_only = tuple(json_only)
        self._slots = asyncio.Semaphore(workers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(self.json_only):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}  # the response start, while an XML body is being collected
        chunks: list[bytes] = []

        async def send_in_format(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = message.get("headers", [])
                if not _is_fhir_json(raw):
                    await send(message)
                    return
                message = {**message, "headers": with_vary(raw, "Accept")}
                fmt, pretty = requested_format(scope)
                if fmt != XML:
                    await send(message)
                    return
                held.update(start=message, headers=MutableHeaders(raw=list(message["headers"])), pretty=pretty)
                return
            if "start" not in held or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send_xml(send, held.pop("start"), held.pop("headers"), b"".join(chunks), held.pop("pretty"))

        await self.app(scope, receive, send_in_format)

    async def _send_xml(self, send: Send, start: Message, headers: MutableHeaders, body: bytes, pretty: bool) -> None:
        status = start["status"]
        if body:  # a 304 has none
            try:
                body = await self._convert(body, pretty)
            except XMLUnavailable as exc:
                log.warning("answer not renderable as XML (status %s): %s", status, exc)
                status = 406
                refusal = NotAcceptable(
                    f"This answer cannot be written as {FHIR_XML} ({exc}); ask for {FHIR_JSON} (_format=json)"
                )
                body = resource_to_xml(refusal.outcome(), pretty=pretty)
                for name in _RESOURCE_HEADERS:
                    del headers[name]
        headers["Content-Type"] = FHIR_XML_UTF8
        if "content-length" in headers or body:
            headers["Content-Length"] = str(len(body))
        await send({**start, "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body})

    async def _convert(self, body: bytes, pretty: bool) -> bytes:
        try:
            async with self._slots:
                return await asyncio.to_thread(json_body_to_xml, body, pretty)
        except XMLUnavailable:
            raise
        except Exception as exc:  # a serialiser fault: the 406 below, never a bodiless 500
            log.error("XML serialisation failed: %s", type(exc).__name__)  # the type only: messages quote data
            raise XMLUnavailable("the serialiser failed") from None
