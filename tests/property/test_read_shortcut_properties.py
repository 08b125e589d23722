"""Properties of the read shortcut's two pure parts (server/fhir/read_shortcut.py,
server/fhir/indexed_headers.py): which requests it takes, and that its indexed headers
answer every lookup as Starlette's Headers does."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from server.fhir.errors import FHIRError
from server.fhir.formats import JSON, check_format
from server.fhir.indexed_headers import IndexedHeaders
from server.fhir.read_shortcut import plain_read
from server.request_context import _nhsd_headers

NAMES = [
    b"accept",
    b"authorization",
    b"x-request-id",
    b"traceparent",
    b"origin",
    b"content-length",
    b"transfer-encoding",
    b"cache-control",
    b"if-none-match",
    b"x-nhs-user-token",
    b"user-agent",
]
names = st.sampled_from(NAMES) | st.binary(min_size=1, max_size=12).map(bytes.lower)
values = st.sampled_from(
    [
        b"",
        b"0",
        b"5",
        b"*/*",
        b"application/fhir+json",
        b"application/fhir+xml",
        b"text/html",
        b"chunked",
        b"https://app.example",
        b"application/json;q=0",
    ]
) | st.binary(max_size=20)
raw_headers = st.lists(st.tuples(names, values), max_size=8)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
queries = st.sampled_from([b"", b"_format=xml", b"_summary=true", b"x"])


def scope_of(method: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": "/Patient/1", "query_string": query, "headers": headers}


def json_wanted(headers: list[tuple[bytes, bytes]]) -> bool:
    accept = [v.decode("latin-1") for k, v in headers if k == b"accept"]
    if not accept:
        return True
    try:
        return check_format(None, ", ".join(accept)) == JSON
    except FHIRError:
        return False


@given(methods, queries, raw_headers)
def test_only_a_get_with_no_query_no_body_no_origin_asking_for_json_is_taken(
    method: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    taken = plain_read(scope_of(method, query, headers)) is not None
    expected = (
        method == "GET"
        and not query
        and all(k not in (b"origin", b"transfer-encoding") for k, _ in headers)
        and all(v.strip() == b"0" for k, v in headers if k == b"content-length")
        and json_wanted(headers)
    )
    assert taken == expected


@given(raw_headers)
def test_the_last_request_id_and_traceparent_are_kept_as_the_request_id_middleware_keeps_them(
    headers: list[tuple[bytes, bytes]],
) -> None:
    plain = [(k, v) for k, v in headers if k not in (b"origin", b"transfer-encoding", b"content-length", b"accept")]
    taken = plain_read(scope_of("GET", b"", plain))
    assert taken is not None
    ids = [v.decode("latin-1") for k, v in plain if k == b"x-request-id"]
    parents = [v.decode("latin-1") for k, v in plain if k == b"traceparent"]
    assert taken.request_id == (ids[-1] if ids else None)
    assert taken.traceparent == (parents[-1] if parents else None)


lookups = st.sampled_from(["Accept", "accept", "AUTHORIZATION", "x-request-id", "Origin", "missing", "Content-Length"])


@given(raw_headers, lookups)
def test_indexed_headers_answer_as_starlette_headers(headers: list[tuple[bytes, bytes]], name: str) -> None:
    scope = {"type": "http", "headers": headers}
    indexed, plain = IndexedHeaders(scope=scope), Headers(scope=scope)
    assert indexed.get(name) == plain.get(name)
    assert indexed.get(name, "default") == plain.get(name, "default")
    assert (name in indexed) == (name in plain)
    if name in plain:
        assert indexed[name] == plain[name]
    assert indexed.items() == plain.items() and indexed.getlist(name) == plain.getlist(name)


nhsd_names = st.sampled_from([b"nhsd-session-urid", b"nhsd-end-user-organisation-ods", b"nhsd-x", b"x-nhsd", b"nhs"])


@given(st.lists(st.tuples(nhsd_names | names, values), max_size=8))
def test_the_nhsd_headers_read_from_raw_bytes_are_those_items_gives(headers: list[tuple[bytes, bytes]]) -> None:
    """caller_identity reads Starlette's raw header bytes (server/request_context.py), not
    items(): the same NHSD-* pairs, whatever else the request carries."""
    starlette = Headers(raw=headers)
    by_items = sorted((k.lower(), v) for k, v in starlette.items() if k.lower().startswith("nhsd-"))
    assert _nhsd_headers(starlette) == by_items
    assert _nhsd_headers(IndexedHeaders(scope={"headers": headers})) == by_items
