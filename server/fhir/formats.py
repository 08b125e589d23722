"""Content negotiation: which media type the client gets, or 406.

We produce FHIR JSON only. Clients spell JSON many ways (application/json, the old
application/json+fhir, _format=json, */*), often with a fhirVersion parameter; all of
them get application/fhir+json. XML or anything else we cannot produce is 406, never a
silent JSON answer.
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
_FORM_TYPE = "application/x-www-form-urlencoded"


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media, quality))
    return ranges


@lru_cache(maxsize=256)
def _accepts_json(accept: str) -> bool:
    """Memoised: clients send the same few Accept values on every request."""
    return any(media in _JSON_TYPES and q > 0 for media, q in _media_ranges(accept))


def check_format(format_param: str | None, accept: str | None) -> None:
    """Raise NotAcceptable unless the client accepts FHIR JSON; `_format` wins over Accept."""
    if format_param is not None:
        fmt = format_param.split(";")[0].strip().lower()
        if fmt not in _FORMAT_ALIASES:
            raise NotAcceptable(
                f"_format={format_param!r} is not produced here; this server returns "
                "application/fhir+json (_format=json)"
            )
        return
    if not accept or not accept.strip() or _accepts_json(accept):
        return
    raise NotAcceptable(f"Accept: {accept!r} cannot be satisfied; this server returns application/fhir+json")


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
