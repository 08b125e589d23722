"""Request limits (issue 8), the pure parts: list limits in the search parser, linear
parsing and subsetting, and the edge middleware's decisions on sizes and headers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir.body_limit import declared_length, refusal
from server.fhir.errors import FHIRError
from server.fhir.middleware import chosen_request_id
from server.fhir.no_store import is_public, merged_vary
from server.fhir.request_limits import (
    PayloadTooLarge,
    RequestLimits,
    TooManyItems,
    UriTooLong,
    current_limits,
    limits_in_force,
)
from server.fhir.search_params import SearchParamSpec
from server.fhir.search_request import SearchDeclaration, parse_search
from server.fhir.subsetting import _choice_base, select_elements
from server.settings import Settings

DECL = SearchDeclaration(
    resource_type="Patient",
    params=(
        SearchParamSpec("family", "string", "name", path="name"),
        SearchParamSpec("identifier", "token", "id", path="identifier"),
        SearchParamSpec("birthdate", "date", "dob", path="birthDate"),
    ),
    includes=("Patient:general-practitioner",),
)


def too_costly(exc: FHIRError) -> str:
    issue = exc.outcome()["issue"][0]
    assert exc.status == 400 and issue["code"] == "too-costly"
    return issue["diagnostics"]


# -- the search parser: linear, and every client-controlled list counted -------------------


def test_forty_thousand_elements_are_refused_at_once_naming_the_limit() -> None:
    names = ",".join(f"e{i}" for i in range(40_000))
    started = time.perf_counter()
    with pytest.raises(TooManyItems) as caught:
        parse_search([("_elements", names)], DECL)
    assert time.perf_counter() - started < 0.5
    diagnostics = too_costly(caught.value)
    assert "40000 given, at most 100" in diagnostics and "FACADE_MAX_LIST_ITEMS" in diagnostics


def test_parsing_is_linear_even_without_a_limit() -> None:
    """The duplicate check was a list scan: 40,000 names took 11-16 s. Now sets."""
    names = ",".join(f"e{i % 30_000}" for i in range(60_000))
    started = time.perf_counter()
    request = parse_search([("_elements", names)], DECL, max_items=10**6)
    assert time.perf_counter() - started < 1.0
    assert len(request.elements) == 30_000 and request.elements[:3] == ("e0", "e1", "e2")


def test_duplicates_are_dropped_in_order() -> None:
    request = parse_search(
        [
            ("_elements", "name,gender,name"),
            ("_elements", "gender,birthDate"),
            ("_include", "Patient:general-practitioner"),
            ("_include", "Patient:general-practitioner"),
        ],
        DECL,
    )
    assert request.elements == ("name", "gender", "birthDate")
    assert len(request.includes) == 1


@pytest.mark.parametrize(
    "pairs, what",
    [
        ([("family", "Smith")] * 101, "Search parameters: 101 given"),
        ([("_include", "Patient:general-practitioner")] * 101, "Search parameters: 101 given"),
        ([("_revinclude", "MedicationRequest:patient")] * 101, "Search parameters: 101 given"),
        ([("identifier", ",".join(f"s|{i}" for i in range(101)))], "Parameter 'identifier' lists values: 101 given"),
        ([("_sort", ",".join(["family"] * 101))], "Parameter '_sort' lists keys: 101 given"),
        ([("_elements", ",".join(["name"] * 101))], "Parameter '_elements' lists names: 101 given"),
    ],
)
def test_each_list_over_the_limit_is_a_400_naming_it(pairs: list[tuple[str, str]], what: str) -> None:
    with pytest.raises(TooManyItems) as caught:
        parse_search(pairs, DECL)
    assert what in too_costly(caught.value)


def test_lists_at_the_limit_pass_and_escaped_commas_are_not_separators() -> None:
    assert len(parse_search([("family", "Smith")] * 100, DECL).params) == 100
    many = ",".join(f"s|{i}" for i in range(100))
    assert len(parse_search([("identifier", many)], DECL).params[0].values) == 100
    escaped = "\\,".join(["Smith"] * 300)  # one value with 299 escaped commas
    assert len(parse_search([("family", escaped)], DECL).params[0].values) == 1


def test_the_current_request_limit_applies_by_default() -> None:
    assert current_limits() == RequestLimits()
    with limits_in_force(RequestLimits(max_list_items=2)):
        with pytest.raises(TooManyItems):
            parse_search([("_elements", "a,b,c")], DECL)
    assert parse_search([("_elements", "a,b,c")], DECL).elements == ("a", "b", "c")


def test_limits_come_from_settings() -> None:
    settings = Settings(max_body_bytes=4096, max_query_chars=300, max_list_items=7)
    assert RequestLimits.from_settings(settings) == RequestLimits(4096, 300, 7)
    assert RequestLimits.from_settings(Settings()) == RequestLimits()


# -- _elements on resources: linear in the number of names ---------------------------------


def _old_choice_base(key: str, wanted: set[str]) -> bool:
    return any(key.startswith(w) and key[len(w) : len(w) + 1].isupper() for w in wanted)


@given(st.text("abcXYZ", max_size=8), st.sets(st.text("abcXYZ", max_size=5), max_size=6))
def test_choice_base_lookup_matches_the_scan_it_replaced(key: str, wanted: set[str]) -> None:
    assert _choice_base(key, wanted) is _old_choice_base(key, wanted)


def test_select_elements_with_many_names_is_fast() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "x",
        "deceasedBoolean": False,
        "name": [{"family": "Smith"}],
        **{f"field{i}": i for i in range(40)},
    }
    names = tuple(f"e{i}" for i in range(40_000)) + ("deceased",)
    started = time.perf_counter()
    view = select_elements(resource, names)
    assert time.perf_counter() - started < 0.2
    assert view["deceasedBoolean"] is False and "name" not in view


# -- the edge middleware's decisions -------------------------------------------------------


def scope(query: bytes = b"", **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "query_string": query,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0", 0),
        ("1048576", 1048576),
        (" 12 ", 12),
        ("9" * 19, int("9" * 19)),
        ("9" * 5000, 10**19),
        ("-1", None),
        ("1e9", None),
        ("²", None),
        ("", None),
        ("12, 12", None),
    ],
)
def test_declared_length(value: str, expected: int | None) -> None:
    assert declared_length(scope(content_length=value)) == expected


def test_declared_length_absent_for_chunked_bodies() -> None:
    assert declared_length(scope(transfer_encoding="chunked")) is None


def test_refusals_before_the_app() -> None:
    limits = RequestLimits(max_body_bytes=1024, max_query_chars=300)
    assert refusal(scope(b"a" * 300, content_length="1024"), limits) is None
    too_long = refusal(scope(b"a" * 301), limits)
    assert isinstance(too_long, UriTooLong) and too_long.status == 414
    assert "301 characters" in too_long.diagnostics and "FACADE_MAX_QUERY_CHARS" in too_long.diagnostics
    too_large = refusal(scope(content_length="1025"), limits)
    assert isinstance(too_large, PayloadTooLarge) and too_large.status == 413
    assert too_large.outcome()["issue"][0]["code"] == "too-costly"


# -- request ids, Vary, public paths -------------------------------------------------------


@pytest.mark.parametrize("inbound", ["6f1c1e4e-4a7e-4b0e-9a53-6f0c2a1d9b10", "6F1C1E4E-4A7E-4B0E-9A53-6F0C2A1D9B10"])
def test_a_uuid_request_id_is_kept_as_sent(inbound: str) -> None:
    assert chosen_request_id(inbound) == inbound


@pytest.mark.parametrize(
    "inbound",
    [
        None,
        "",
        "9000000009",
        "client-req-1",
        "Jane Smith 22/10/2010",
        "{6f1c1e4e-4a7e-4b0e-9a53-6f0c2a1d9b10}",
        "urn:uuid:6f1c1e4e-4a7e-4b0e-9a53-6f0c2a1d9b10",
        "6f1c1e4e4a7e4b0e9a536f0c2a1d9b10",
        "6f1c1e4e-4a7e-4b0e-9a53-6f0c2a1d9b10\n",
        "6f1c1e4e-4a7e-4b0e-9a53-6f0c2a1d9b1０",  # fullwidth zero
    ],
)
def test_any_other_request_id_is_replaced_by_a_new_uuid4(inbound: str | None) -> None:
    import uuid

    chosen = chosen_request_id(inbound)
    assert chosen != inbound and uuid.UUID(chosen).version == 4 and str(uuid.UUID(chosen)) == chosen


@pytest.mark.parametrize(
    "existing, expected",
    [
        ([], "Authorization"),
        (["Accept-Encoding"], "Accept-Encoding, Authorization"),
        (["Accept-Encoding, Origin", "Prefer"], "Accept-Encoding, Origin, Prefer, Authorization"),
        (["authorization"], "authorization"),
    ],
)
def test_vary_is_merged(existing: list[str], expected: str) -> None:
    assert merged_vary(existing, "Authorization") == expected


@pytest.mark.parametrize(
    "path, public",
    [
        ("/metadata", True),
        ("/.well-known/smart-configuration", True),
        ("/openapi.json", True),
        ("/_health", True),
        ("/Patient/9000000009", False),
        ("/pas/v1/patients/H1", False),
        ("/metadata/", False),
        ("/Patient", False),
    ],
)
def test_public_paths(path: str, public: bool) -> None:
    assert is_public({"path": path}) is public
    assert is_public({"path": "/fhir" + path, "root_path": "/fhir"}) is public
