"""ETag / Last-Modified / conditional reads, and content negotiation + form bodies."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from server.fhir.formats import JSON, XML, answer_format, check_form_body, check_format, parse_form_body
from server.fhir.versioning import content_version, ensure_version, etag, http_date, last_modified, not_modified

PATIENT = {
    "resourceType": "Patient",
    "id": "1",
    "meta": {"versionId": "2", "lastUpdated": "2026-03-01T09:30:00+00:00"},
    "gender": "female",
}
UNVERSIONED = {"resourceType": "Patient", "id": "1", "gender": "male"}


# -- versioning -------------------------------------------------------------------------------


def test_etag_from_meta_version() -> None:
    assert etag(PATIENT) == 'W/"2"'


def test_content_version_is_stable_ignores_meta_and_key_order() -> None:
    reordered = {"gender": "male", "id": "1", "resourceType": "Patient", "meta": {"lastUpdated": "2020-01-01"}}
    assert content_version(UNVERSIONED) == content_version(reordered)
    assert content_version(UNVERSIONED) != content_version({**UNVERSIONED, "gender": "female"})
    assert etag(UNVERSIONED) == f'W/"{content_version(UNVERSIONED)}"'


def test_ensure_version_keeps_upstream_version_and_fills_missing() -> None:
    assert ensure_version(PATIENT) is PATIENT
    filled = ensure_version(UNVERSIONED)
    assert filled["meta"]["versionId"] == content_version(UNVERSIONED)
    assert "meta" not in UNVERSIONED  # input not mutated
    assert etag(filled) == etag(UNVERSIONED)


def test_last_modified_and_http_date() -> None:
    modified = last_modified(PATIENT)
    assert modified == datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
    assert http_date(modified) == "Sun, 01 Mar 2026 09:30:00 GMT"
    assert last_modified(UNVERSIONED) is None
    assert last_modified({"meta": {"lastUpdated": "garbage"}}) is None
    assert last_modified({"meta": {"lastUpdated": "2026-03-01T09:30:00"}}).tzinfo is not None


@pytest.mark.parametrize(
    "inm, ims, expected",
    [
        ('W/"2"', None, True),
        ('"2"', None, True),  # weak comparison
        ('W/"1", W/"2"', None, True),
        ("*", None, True),
        ('W/"1"', None, False),
        ('W/"1"', "Sun, 01 Mar 2026 09:30:00 GMT", False),  # If-None-Match wins over If-Modified-Since
        (None, "Sun, 01 Mar 2026 09:30:00 GMT", True),
        (None, "Mon, 02 Mar 2026 00:00:00 GMT", True),
        (None, "Sun, 01 Mar 2026 09:29:59 GMT", False),
        (None, "not a date", False),
        (None, None, False),
    ],
)
def test_not_modified(inm: str | None, ims: str | None, expected: bool) -> None:
    assert not_modified(PATIENT, inm, ims) is expected


def test_if_modified_since_without_last_updated_is_never_304() -> None:
    assert not not_modified(UNVERSIONED, None, "Sun, 01 Mar 2026 09:30:00 GMT")


@given(st.text(max_size=30))
def test_not_modified_never_raises_on_odd_headers(value: str) -> None:
    assert not_modified(PATIENT, value or None, None) in (True, False)  # a bool, not a truthy object
    assert not_modified(PATIENT, None, value or None) in (True, False)


# -- content negotiation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, accept",
    [
        (None, None),
        (None, ""),
        (None, "application/fhir+json"),
        (None, "application/json"),
        (None, "application/json+fhir"),
        (None, "*/*"),
        (None, "application/fhir+json; fhirVersion=4.0"),
        (None, "application/fhir+json, application/fhir+xml"),  # equal q: the first named
        (None, "application/fhir+xml;q=0.5, application/fhir+json"),
        (None, "application/json;q=0.9, application/fhir+xml;q=0.1"),
        (None, "text/html, */*;q=0.1"),
        ("json", "application/fhir+xml"),  # _format wins over Accept
        ("application/fhir+json", None),
        ("application/json", None),
        ("application/json+fhir", None),
        ("application/fhir+json; fhirVersion=4.0", None),
    ],
)
def test_json_is_accepted_in_all_its_spellings(fmt: str | None, accept: str | None) -> None:
    assert check_format(fmt, accept) == JSON


@pytest.mark.parametrize(
    "fmt, accept",
    [
        (None, "application/fhir+xml"),
        (None, "application/xml+fhir"),  # the DSTU2 spelling older engines still send
        (None, "application/xml"),
        (None, "text/xml"),
        (None, "application/fhir+xml; fhirVersion=4.0"),
        (None, "application/fhir+xml, */*"),  # a named type beats the wildcard
        (None, "application/fhir+xml, application/fhir+json"),
        (None, "application/fhir+xml;q=1, application/fhir+json;q=0.5"),
        (None, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),  # a browser: R4 says XML
        ("xml", None),
        ("xml", "application/fhir+json"),  # _format wins over Accept
        ("text/xml", None),
        ("application/xml", None),
        ("application/fhir+xml", None),
        ("application/fhir xml", None),  # an unencoded '+' in a query string
        ("application/fhir+xml; fhirVersion=4.0", None),
        ("XML", "text/html"),
    ],
)
def test_xml_in_all_its_spellings(fmt: str | None, accept: str | None) -> None:
    assert check_format(fmt, accept) == XML


def test_an_answer_to_a_format_not_produced_is_json() -> None:
    """The 406 itself (and any error before negotiation) must be written in some format."""
    assert answer_format("html", "application/fhir+xml") == JSON
    assert answer_format(None, "text/html") == JSON
    assert answer_format(None, "application/fhir+xml") == XML


@pytest.mark.parametrize(
    "fmt, accept",
    [
        ("html", None),
        ("turtle", "application/fhir+xml"),
        (None, "text/html"),
        (None, "application/fhir+xml;q=0"),
        (None, "application/fhir+json;q=0"),
    ],
)
def test_formats_we_cannot_produce_are_406(fmt: str | None, accept: str | None) -> None:
    with pytest.raises(NotAcceptable) as caught:
        check_format(fmt, accept)
    assert caught.value.status == 406


# -- POST _search bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded;charset=utf-8",
    ],
)
def test_form_content_types_accepted(content_type: str | None) -> None:
    assert check_form_body(content_type).lower() == "utf-8"


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/fhir+json", "multipart/form-data", "text/plain"]
)
def test_other_body_types_are_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        check_form_body(content_type)
    assert caught.value.status == 415


def test_form_body_parsing_keeps_order_repeats_and_escapes() -> None:
    body = b"family=O%27Brien&given=Jane&given=Anne&identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C1&x="
    assert parse_form_body("application/x-www-form-urlencoded; charset=UTF-8", body) == [
        ("family", "O'Brien"),
        ("given", "Jane"),
        ("given", "Anne"),
        ("identifier", "https://fhir.nhs.uk/Id/nhs-number|1"),
        ("x", ""),
    ]


def test_form_body_charsets() -> None:
    assert parse_form_body("application/x-www-form-urlencoded", "family=Zoë".encode()) == [("family", "Zoë")]
    assert parse_form_body("application/x-www-form-urlencoded; charset=latin-1", b"family=Zo%EB") == [("family", "Zoë")]
    with pytest.raises(BadRequest):
        parse_form_body("application/x-www-form-urlencoded", b"family=Zo%EB")
    with pytest.raises(BadRequest):
        parse_form_body("application/x-www-form-urlencoded; charset=klingon", b"family=x")
