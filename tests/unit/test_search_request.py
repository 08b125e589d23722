"""parse_search: control parameters, unknown/strict handling, _count cap, _sort, partitions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_params import ReferenceValue, SearchParamSpec, StringValue, TokenValue
from server.fhir.search_request import Include, SearchDeclaration, SortKey, parse_search

DECL = SearchDeclaration(
    resource_type="MedicationRequest",
    params=(
        SearchParamSpec("patient", "reference", "who", path="subject", target_types=("Patient",)),
        SearchParamSpec("subject", "reference", "who", path="subject", target_types=("Patient", "Group")),
        SearchParamSpec("authoredon", "date", "when", path="authoredOn"),
        SearchParamSpec("status", "token", "status", path="status"),
        SearchParamSpec("family", "string", "no path"),
        SearchParamSpec("code", "token", "token with path", path="code"),
    ),
    includes=("MedicationRequest:patient",),
    default_count=20,
    max_count=50,
)


def test_defaults() -> None:
    req = parse_search([], DECL)
    assert req.resource_type == "MedicationRequest"
    assert req.count == 20 and req.params == () and req.unknown == ()
    assert req.canonical_pairs() == []


@pytest.mark.parametrize("raw, expected", [("0", 0), ("1", 1), ("50", 50), ("51", 50), ("100000", 50)])
def test_count_is_capped_at_the_maximum(raw: str, expected: int) -> None:
    assert parse_search([("_count", raw)], DECL).count == expected


@pytest.mark.parametrize("raw", ["-1", "ten", "", "1.5"])
def test_bad_count_is_400_naming_it(raw: str) -> None:
    with pytest.raises(InvalidSearchParameter, match="_count"):
        parse_search([("_count", raw)], DECL)


def test_repeated_parameter_is_and_comma_is_or() -> None:
    req = parse_search([("status", "active,completed"), ("status", "stopped")], DECL)
    params = req.get("status")
    assert len(params) == 2
    assert [len(p.values) for p in params] == [2, 1]


def test_patient_identifier_chain_partitions_on_dot() -> None:
    req = parse_search([("patient.identifier", "https://fhir.nhs.uk/Id/nhs-number|9000000009")], DECL)
    (param,) = req.params
    assert (param.name, param.modifier) == ("patient", "identifier")
    assert param.values[0].identifier == TokenValue("https://fhir.nhs.uk/Id/nhs-number", "9000000009")
    assert req.canonical_pairs() == [("patient:identifier", "https://fhir.nhs.uk/Id/nhs-number|9000000009")]


def test_subject_type_modifier_partitions_on_colon() -> None:
    req = parse_search([("subject:Patient", "123")], DECL)
    (param,) = req.params
    assert (param.name, param.modifier) == ("subject", "Patient")
    assert param.values == (ReferenceValue("Patient", "123"),)
    assert req.canonical_pairs() == [("subject:Patient", "Patient/123")]


def test_patient_forms_normalise_to_the_same_self_pairs() -> None:
    a = parse_search([("patient", "123")], DECL).canonical_pairs()
    b = parse_search([("patient", "Patient/123")], DECL).canonical_pairs()
    assert a == b == [("patient", "Patient/123")]


def test_unknown_parameters_are_dropped_and_listed() -> None:
    req = parse_search([("status", "active"), ("foo", "1"), ("_id", "x")], DECL)
    assert req.unknown == ("foo", "_id")
    assert req.canonical_pairs() == [("status", "active")]


def test_strict_handling_is_400_listing_every_unknown() -> None:
    with pytest.raises(InvalidSearchParameter) as caught:
        parse_search([("foo", "1"), ("status", "active"), ("bar", "2")], DECL, strict=True)
    assert "foo" in caught.value.diagnostics and "bar" in caught.value.diagnostics
    assert caught.value.status == 400


def test_strict_without_unknowns_passes() -> None:
    params = parse_search([("status", "active")], DECL, strict=True).params
    assert [(p.name, p.modifier, p.values) for p in params] == [("status", None, (TokenValue(None, "active", True),))]


def test_transport_parameters_are_neither_unknown_nor_in_self() -> None:
    req = parse_search([("_format", "json"), ("_pretty", "true"), ("status", "a")], DECL, strict=True)
    assert req.unknown == ()
    assert req.canonical_pairs() == [("status", "a")]


def test_malformed_known_value_is_400_even_when_lenient() -> None:
    with pytest.raises(InvalidSearchParameter, match="authoredon"):
        parse_search([("authoredon", "yesterday")], DECL)


@pytest.mark.parametrize("mode", ["true", "count", "text", "data"])
def test_summary_modes(mode: str) -> None:
    req = parse_search([("_summary", mode)], DECL)
    assert req.summary == mode
    assert ("_summary", mode) in req.canonical_pairs()


def test_summary_false_is_no_summary_and_bad_mode_is_400() -> None:
    assert parse_search([("_summary", "false")], DECL).summary is None
    with pytest.raises(InvalidSearchParameter, match="_summary"):
        parse_search([("_summary", "maybe")], DECL)


def test_elements_deduplicated_and_checked() -> None:
    req = parse_search([("_elements", "status, subject,status")], DECL)
    assert req.elements == ("status", "subject")
    assert ("_elements", "status,subject") in req.canonical_pairs()
    with pytest.raises(InvalidSearchParameter, match="_elements"):
        parse_search([("_elements", "name.family")], DECL)
    with pytest.raises(InvalidSearchParameter, match="_elements"):
        parse_search([("_elements", "a,,b")], DECL)


def test_total_modes() -> None:
    assert parse_search([("_total", "none")], DECL).total == "none"
    with pytest.raises(InvalidSearchParameter, match="_total"):
        parse_search([("_total", "all")], DECL)


def test_sort_on_declared_date_and_string_with_path() -> None:
    req = parse_search([("_sort", "-authoredon,code")], DECL)
    # code is a token: not sortable here, so it is unknown (dropped) rather than silently honoured
    assert req.sort == (SortKey("authoredon", True),)
    assert req.unknown == ("_sort=code",)
    assert ("_sort", "-authoredon") in req.canonical_pairs()


def test_sort_on_param_without_path_or_undeclared_is_unknown_and_strict_400() -> None:
    assert parse_search([("_sort", "family")], DECL).unknown == ("_sort=family",)
    with pytest.raises(InvalidSearchParameter, match="_sort=nope"):
        parse_search([("_sort", "nope")], DECL, strict=True)


def test_include_supported_unsupported_and_malformed() -> None:
    req = parse_search(
        [
            ("_include", "MedicationRequest:patient"),
            ("_include", "MedicationRequest:patient"),
            ("_include", "MedicationRequest:requester"),
        ],
        DECL,
    )
    assert req.includes == (Include("MedicationRequest", "patient"),)
    assert req.unknown == ("_include=MedicationRequest:requester",)
    assert parse_search([("_include:iterate", "MedicationRequest:patient:Patient")], DECL).includes == (
        Include("MedicationRequest", "patient", "Patient"),
    )
    with pytest.raises(InvalidSearchParameter, match="_include"):
        parse_search([("_include", "justone")], DECL)


def test_canonical_pairs_are_sorted_and_escaped() -> None:
    req = parse_search([("status", "b"), ("family:exact", "O\\,Brien"), ("authoredon", "2010")], DECL)
    assert req.canonical_pairs() == [("authoredon", "eq2010"), ("family:exact", "O\\,Brien"), ("status", "b")]
    assert req.get("family")[0].values == (StringValue("O,Brien"),)


@given(
    st.lists(
        st.sampled_from(
            [
                ("status", "a"),
                ("foo", "1"),
                ("authoredon", "ge2010"),
                ("bar", "x"),
                ("_count", "5"),
                ("patient", "Patient/1"),
            ]
        ),
        max_size=6,
    )
)
def test_self_pairs_never_contain_unknowns_and_parse_back_identically(pairs: list[tuple[str, str]]) -> None:
    req = parse_search(pairs, DECL)
    canonical = req.canonical_pairs()
    assert not {n for n, _ in canonical} & {"foo", "bar"}
    again = parse_search(canonical, DECL, strict=True)
    assert again.canonical_pairs() == canonical
