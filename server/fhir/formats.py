"""Content negotiation: which format the client gets (JSON or XML), or 406.

JSON is the default. Clients spell it many ways (application/json, the old
application/json+fhir, _format=json, */*), often with a fhirVersion parameter; all of
them get application/fhir+json. XML is produced when asked for (application/fhir+xml,
the old application/xml+fhir, application/xml and text/xml, as R4 http.html lists, and
`_format=xml`): the handlers still build dicts, and server.fhir.xml_format renders the
final body as XML at the edge. Anything else is 406, never a silent JSON answer.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qsl

from server.fhir.errors import BadRequest, NotAcceptable, UnsupportedMediaType

_JSON_TYPES = {
    "application/fhir+json",
    "application/json+fhir",
    "application/json",
    "application/*",
    "*/*",
    "json",
    "text/json",
}
_FORMAT_ALIASES = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
_XML_TYPES = {"application/fhir+xml", "application/xml+fhir", "application/xml", "text/xml"}
_XML_FORMAT_ALIASES = {"xml", *_XML_TYPES}
_WILDCARDS = {"*/*", "application/*"}
JSON = "json"
XML = "xml"
_FORM_TYPE = "application/x-www-form-urlencoded"


def _fhir_r4(value: str) -> bool:
    """A `fhirVersion` media-type parameter naming R4: 4.0, or a 4.0.x patch release
    (FHIR R4 http.html#version-parameter). Anything else (3.0, 4.3, 5.0) is another FHIR."""
    version = value.strip().strip('"')
    return version == "4.0" or version.startswith("4.0.")


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    """(media type, quality) per range; a range asking for another FHIR version than R4
    (`fhirVersion=3.0`) gets quality 0: it cannot be produced (R4 http.html: 406)."""
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        quality = 1.0
        other_version = False
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif key.strip().lower() == "fhirversion" and not _fhir_r4(value):
                other_version = True
        ranges.append((media, 0.0 if other_version else quality))
    return ranges


@lru_cache(maxsize=256)
def _accepted_format(accept: str) -> str | None:
    """JSON, XML or neither (None) for an Accept header. Memoised: clients send the same few
    Accept values on every request.

    The highest q wins; at equal q a named type beats a wildcard (which means JSON, the
    default), then the first one named: `application/fhir+xml, */*` is XML, and a
    browser's `application/xml;q=0.9, */*;q=0.8` too (R4 http.html: a generic XML type
    gets FHIR XML)."""
    best: tuple[float, bool, int] | None = None
    chosen = None
    for position, (media, q) in enumerate(_media_ranges(accept)):
        if q <= 0:
            continue
        if media in _XML_TYPES:
            fmt = XML
        elif media in _JSON_TYPES:
            fmt = JSON
        else:
            continue
        rank = (q, media not in _WILDCARDS, -position)
        if best is None or rank > best:
            best, chosen = rank, fmt
    return chosen


def check_format(format_param: str | None, accept: str | None) -> str:
    """The format to answer in, JSON or XML; `_format` wins over Accept. NotAcceptable for
    any other.

    In a query string `_format=application/fhir+xml` arrives as `application/fhir xml`
    when the client left the `+` unencoded (many do): a space there stands for `+`."""
    if format_param is not None:
        fmt = format_param.split(";")[0].strip().lower().replace(" ", "+")
        if not all(q > 0 for _, q in _media_ranges(format_param)):  # fhirVersion other than 4.0
            raise NotAcceptable(f"_format={format_param!r}: this server serves FHIR R4 (fhirVersion=4.0) only")
        if fmt in _FORMAT_ALIASES:
            return JSON
        if fmt in _XML_FORMAT_ALIASES:
            return XML
        raise NotAcceptable(
            f"_format={format_param!r} is not produced here; this server returns "
            "application/fhir+json (_format=json) or application/fhir+xml (_format=xml)"
        )
    if not accept or not accept.strip():
        return JSON
    chosen = _accepted_format(accept)
    if chosen is None:
        raise NotAcceptable(
            f"Accept: {accept!r} cannot be satisfied; this server returns application/fhir+json or application/fhir+xml"
        )
    return chosen


def answer_format(format_param: str | None, accept: str | None) -> str:
    """The format of an answer given whatever the request asked: `check_format`, but JSON
    instead of a 406 (error bodies, the 406 itself included, must be in some format)."""
    try:
        return check_format(format_param, accept)
    except NotAcceptable:
        return JSON


def check_form_body(content_type: str | None) -> str:
    """A _search POST must carry form data (charset parameter allowed, HAPI sends it).

    Returns the charset to decode the body with (UTF-8 unless the header names another).
    """
    pieces = [p.strip() for p in (content_type or "").split(";")]
    media = pieces[0].lower()
    if media and media != _FORM_TYPE:
        raise UnsupportedMediaType(f"POST _search takes {_FORM_TYPE}, not {content_type!r}")
    for param in pieces[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def parse_form_body(content_type: str | None, body: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of an application/x-www-form-urlencoded search body.

    Parsed here rather than with Starlette's request.form(), which needs the optional
    python-multipart package for even a plain urlencoded body.
    """
    charset = check_form_body(content_type)
    try:
        return parse_qsl(body.decode(charset), keep_blank_values=True, encoding=charset, errors="strict")
    except (UnicodeDecodeError, LookupError, ValueError):
        raise BadRequest(f"The _search body is not valid {_FORM_TYPE} in charset {charset[:40]!r}") from None
