"""SMART scopes (server/access/scopes.py): v2 `cruds` letters in order, v1 mapping, what grants nothing."""

from __future__ import annotations

import pytest

from server.access.scopes import MAX_SCOPES, Scope, ScopeSet, parse_scope


@pytest.mark.parametrize(
    "letters, expected",
    [
        ("c", {"c"}),
        ("r", {"r"}),
        ("s", {"s"}),
        ("rs", {"r", "s"}),
        ("cud", {"c", "u", "d"}),
        ("cruds", {"c", "r", "u", "d", "s"}),
        ("rd", {"r", "d"}),
        ("cs", {"c", "s"}),
    ],
)
def test_v2_permissions_in_cruds_order_are_granted(letters: str, expected: set[str]) -> None:
    scope = parse_scope(f"patient/Observation.{letters}")
    assert scope == Scope("patient", "Observation", frozenset(expected))


@pytest.mark.parametrize("letters", ["sr", "rr", "dc", "srdu", "scrud", "x", "rsx", "RS", "R", "crudss"])
def test_v2_permissions_out_of_order_repeated_or_unknown_are_refused(letters: str) -> None:
    assert parse_scope(f"user/Patient.{letters}") is None


@pytest.mark.parametrize(
    "suffix, expected",
    [
        ("read", {"r", "s"}),
        ("write", {"c", "u", "d"}),
        ("*", {"c", "r", "u", "d", "s"}),
    ],
)
def test_v1_suffixes_map_onto_v2_letters(suffix: str, expected: set[str]) -> None:
    scope = parse_scope(f"user/MedicationRequest.{suffix}")
    assert scope is not None
    assert scope.permissions == frozenset(expected)
    assert (scope.context, scope.resource_type) == ("user", "MedicationRequest")


def test_v1_read_grants_search_but_not_write() -> None:
    scope = parse_scope("patient/*.read")
    assert scope is not None
    assert scope.grants("Patient", "s") and scope.grants("Patient", "r")
    assert not scope.grants("Patient", "c") and not scope.grants("Patient", "u")


@pytest.mark.parametrize("context", ["patient", "user", "system"])
def test_each_launch_context_is_kept(context: str) -> None:
    scope = parse_scope(f"{context}/Patient.r")
    assert scope is not None and scope.context == context


@pytest.mark.parametrize(
    "text",
    [
        "Patient/Patient.r",
        "PATIENT/Patient.r",
        "group/Patient.r",
        "/Patient.r",
        "patient/.r",
        "patient/Patient",
        "patient/Patient.",
        "patient/Pat1ent.r",
        "patient/Patient.r.s",
        "patient/**.r",
        "patient//Patient.r",
    ],
)
def test_malformed_scopes_grant_nothing(text: str) -> None:
    assert parse_scope(text) is None


def test_star_type_grants_every_type_but_a_named_type_only_itself() -> None:
    star = parse_scope("system/*.rs")
    named = parse_scope("system/Patient.rs")
    assert star is not None and named is not None
    assert star.grants("AllergyIntolerance", "r") and star.grants("Patient", "s")
    assert named.grants("Patient", "r")
    assert not named.grants("AllergyIntolerance", "r")
    assert not star.grants("Patient", "d")


@pytest.mark.parametrize(
    "text",
    [
        "patient/Observation.rs?category=laboratory",
        "user/*.cruds?_tag=x",
        "patient/Patient.r?",
        "patient/Patient.read?identifier=x",
    ],
)
def test_query_suffixed_scopes_grant_nothing(text: str) -> None:
    assert parse_scope(text) is None
    assert ScopeSet.parse(text).contexts_granting("Observation", "r") == frozenset()
    assert ScopeSet.parse(text).contexts_granting("Patient", "r") == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "fhirUser",
        "launch/patient",
        "launch",
        "offline_access",
        "online_access",
        "profile",
        "launch/encounter",
    ],
)
def test_non_data_scopes_are_kept_as_text_but_grant_nothing(text: str) -> None:
    scopes = ScopeSet.parse(f"{text} user/Patient.r")
    assert text in scopes.raw
    assert [s.resource_type for s in scopes.scopes] == ["Patient"]
    assert scopes.contexts_granting("Patient", "r") == {"user"}
    assert ScopeSet.parse(text).scopes == ()


def test_scope_claim_is_space_separated_and_scp_claim_is_a_list() -> None:
    from_string = ScopeSet.parse("patient/Patient.rs  user/AllergyIntolerance.read\topenid")
    from_list = ScopeSet.parse(["patient/Patient.rs", "user/AllergyIntolerance.read", "openid"])
    assert from_string.raw == from_list.raw == ("patient/Patient.rs", "user/AllergyIntolerance.read", "openid")
    assert from_string.scopes == from_list.scopes
    assert len(from_list.scopes) == 2


def test_scp_list_ignores_non_string_items() -> None:
    scopes = ScopeSet.parse(["user/Patient.r", 42, None, {"scope": "system/*.cruds"}, ["system/*.cruds"]])
    assert scopes.raw == ("user/Patient.r",)
    assert scopes.contexts_granting("Patient", "r") == {"user"}
    assert scopes.contexts_granting("Patient", "c") == frozenset()


@pytest.mark.parametrize("value", [None, 42, {"scope": "system/*.cruds"}, b"system/*.cruds", 1.5, True])
def test_other_claim_types_grant_nothing(value: object) -> None:
    scopes = ScopeSet.parse(value)
    assert scopes.scopes == () and scopes.raw == ()


def test_scp_tuple_is_read_like_a_list() -> None:
    assert ScopeSet.parse(("system/Patient.s",)).contexts_granting("Patient", "s") == {"system"}


def test_contexts_granting_names_every_context_that_grants() -> None:
    scopes = ScopeSet.parse("patient/Patient.rs user/Patient.r system/*.s user/AllergyIntolerance.c")
    assert scopes.contexts_granting("Patient", "r") == {"patient", "user"}
    assert scopes.contexts_granting("Patient", "s") == {"patient", "system"}
    assert scopes.contexts_granting("AllergyIntolerance", "s") == {"system"}
    assert scopes.contexts_granting("AllergyIntolerance", "c") == {"user"}
    assert scopes.contexts_granting("AllergyIntolerance", "r") == frozenset()
    assert scopes.contexts_granting("Patient", "d") == frozenset()


def test_only_the_first_max_scopes_are_read() -> None:
    filler = [f"user/Type{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}.r" for i in range(MAX_SCOPES)]
    scopes = ScopeSet.parse(" ".join([*filler, "system/Patient.cruds"]))
    assert len(scopes.raw) == MAX_SCOPES
    assert len(scopes.scopes) == MAX_SCOPES
    assert "system/Patient.cruds" not in scopes.raw
    assert scopes.contexts_granting("Patient", "d") == frozenset()
    # the same scope inside the bound does grant
    inside = ScopeSet.parse(" ".join(["system/Patient.cruds", *filler]))
    assert inside.contexts_granting("Patient", "d") == {"system"}


def test_max_scopes_bound_applies_to_scp_lists_too() -> None:
    scopes = ScopeSet.parse(["openid"] * MAX_SCOPES + ["user/Patient.r"])
    assert len(scopes.raw) == MAX_SCOPES
    assert scopes.contexts_granting("Patient", "r") == frozenset()


def test_text_is_sorted_and_deduplicated() -> None:
    scopes = ScopeSet.parse("user/Patient.r openid user/Patient.r launch/patient")
    assert scopes.text() == "launch/patient openid user/Patient.r"
    assert ScopeSet.parse("openid user/Patient.r").text() == ScopeSet.parse("user/Patient.r openid").text()


def test_resource_type_is_case_sensitive() -> None:
    scope = parse_scope("user/Patient.r")
    assert scope is not None
    assert not scope.grants("patient", "r")
