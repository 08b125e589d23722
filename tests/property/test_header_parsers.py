"""Header parsers take any text a client can send (issue 8): never an exception, ASCII
digits only (str.isdigit, \\d and int() also accept "²" or "٣"), and no int() of an
unbounded digit run (Python refuses int("9" * 5000))."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from server.cache.policy import DELTA_SECONDS_MAX, delta_seconds, parse_cache_control
from server.fhir.middleware import chosen_request_id
from server.fhir.versioning import not_modified, parse_http_date
from server.pas.routes import if_match_version

# Header values arrive as latin-1 text; mix in digits of other scripts and long digit runs.
header_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet='0123456789²³¹٠١٢٣੧੨０１,="W/ -', max_size=40),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
)
PATIENT = {"resourceType": "Patient", "id": "1", "meta": {"versionId": "2", "lastUpdated": "2026-03-01T09:30:00Z"}}


@given(header_text, st.one_of(st.none(), header_text))
@example("max-age=²", None)
@example("max-age=" + "9" * 5000, None)
@example("max-age=٣, no-cache", "no-cache")
def test_cache_control_never_raises_and_reads_ascii_digits_only(value: str, pragma: str | None) -> None:
    directives = parse_cache_control(value, pragma)
    if directives.max_age is not None:
        assert 0 <= directives.max_age <= DELTA_SECONDS_MAX


@given(header_text)
@example("²")
@example("٣")
@example("9" * 5000)
def test_delta_seconds(value: str) -> None:
    age = delta_seconds(value)
    if value.isascii() and value.isdigit():
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)  # the test may convert what the parser must not
        try:
            assert age == min(int(value), DELTA_SECONDS_MAX)
        finally:
            sys.set_int_max_str_digits(limit)
    else:
        assert age is None


@given(header_text, header_text)
@example('W/"' + "9" * 5000 + '"', "Mon, 01 Jan " + "9" * 5000 + " 00:00:00 GMT")
@example('"٢"', "Mon, 01 Jan ٢٠٢٦ 00:00:00 GMT")
def test_conditional_read_headers_never_raise(if_none_match: str, if_modified_since: str) -> None:
    assert not_modified(PATIENT, if_none_match, None) in (True, False)
    assert not_modified(PATIENT, None, if_modified_since) in (True, False)


def test_http_dates_in_ascii_only() -> None:
    assert parse_http_date("Sun, 01 Mar 2026 09:30:00 GMT") == datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
    assert parse_http_date("Sunday, 01-Mar-26 09:30:00 GMT") is not None  # RFC 850, still to be accepted
    assert parse_http_date("Sun, 01 Mar ٢٠٢٦ 09:30:00 GMT") is None  # email.utils alone read this as 2026
    assert parse_http_date("Fri, 31 Dec 99999 23:59:59 GMT") is None


@given(header_text)
@example('W/"' + "9" * 5000 + '"')
@example('W/"٣"')
@example('"3"\n')
def test_if_match_never_raises_and_takes_ascii_digits_only(value: str) -> None:
    version = if_match_version(value)
    if version is not None:
        assert 0 <= version < 10**18 and str(version) in value


def test_if_match_accepts_the_etags_it_issues() -> None:
    assert if_match_version('W/"3"') == 3 and if_match_version(' "12" ') == 12
    assert if_match_version('W/"٣"') is None and if_match_version('W/"' + "1" * 19 + '"') is None


@given(st.one_of(st.none(), header_text, st.uuids().map(str), st.uuids().map(lambda u: str(u).upper())))
def test_request_id_is_always_a_uuid(inbound: str | None) -> None:
    import uuid

    chosen = chosen_request_id(inbound)
    assert uuid.UUID(chosen) and len(chosen) == 36 and chosen.isascii()
