"""FHIR Patient search -> PDS parameters (server/sources/pds/query.py), every translation rule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_request import SearchDeclaration, parse_search
from server.sources.pds.provider import PatientFromPDS
from server.sources.pds.query import pds_search_params

DECL = SearchDeclaration("Patient", PatientFromPDS.search_params)
BASE = [("family", "Smith"), ("birthdate", "2010-10-22")]


def translate(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    return pds_search_params(parse_search(list(pairs), DECL))


def dates_for(raw: str) -> list[str]:
    return [v for n, v in translate(("family", "Smith"), ("birthdate", raw)) if n == "birthdate"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2010-10-22", ["eq2010-10-22"]),
        ("eq2010-10-22", ["eq2010-10-22"]),
        ("2010", ["ge2010-01-01", "le2010-12-31"]),
        ("eq2010-02", ["ge2010-02-01", "le2010-02-28"]),
        ("2012-02", ["ge2012-02-01", "le2012-02-29"]),
        ("ge2010-10-22", ["ge2010-10-22"]),
        ("ge2010-10", ["ge2010-10-01"]),
        ("ge2010", ["ge2010-01-01"]),
        ("le2010-10-22", ["le2010-10-22"]),
        ("le2010-10", ["le2010-10-31"]),
        ("le2010", ["le2010-12-31"]),
        ("gt2010-10-22", ["ge2010-10-23"]),
        ("gt2010-12", ["ge2011-01-01"]),
        ("sa2010", ["ge2011-01-01"]),
        ("lt2010-10-22", ["le2010-10-21"]),
        ("lt2010-10", ["le2010-09-30"]),
        ("eb2010", ["le2009-12-31"]),
        ("lt2010-03-01", ["le2010-02-28"]),
    ],
)
def test_birthdate_prefixes_and_partial_dates(raw: str, expected: list[str]) -> None:
    assert dates_for(raw) == expected


@pytest.mark.parametrize(
    "raw, says",
    [
        ("ne2010-10-22", "prefix 'ne'"),
        ("ap2010-10-22", "prefix 'ap'"),
        ("2010-10-22T10:00Z", "whole days"),
        ("lt0001-01-01", "no date is before"),
        ("2010-10-22,2010-10-23", "one of several"),
    ],
)
def test_birthdate_forms_pds_cannot_express_are_400(raw: str, says: str) -> None:
    with pytest.raises(InvalidSearchParameter, match=says) as caught:
        dates_for(raw)
    assert "birthdate" in caught.value.diagnostics


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
    st.sampled_from(["eq", "ge", "le", "gt", "lt", "sa", "eb"]),
)
def test_day_translations_select_the_same_days_as_fhir(day: date, prefix: str) -> None:
    """For a whole-day birthDate, PDS's eq/ge/le filter agrees with FHIR's prefix semantics."""
    sent = dates_for(f"{prefix}{day.isoformat()}")
    fhir = parse_search([("birthdate", f"{prefix}{day.isoformat()}")], DECL).params[0].values[0]

    def pds_accepts(candidate: date) -> bool:
        c = candidate.isoformat()
        return all({"eq": c == v[2:], "ge": c >= v[2:], "le": c <= v[2:]}[v[:2]] for v in sent)

    for candidate in (day - timedelta(days=1), day, day + timedelta(days=1)):
        value = parse_search([("birthdate", candidate.isoformat())], DECL).params[0].values[0]
        assert pds_accepts(candidate) == fhir.matches(value.start, value.end), candidate


def test_death_date_uses_the_same_rules() -> None:
    pairs = translate(*BASE, ("death-date", "2020"))
    assert [v for n, v in pairs if n == "death-date"] == ["ge2020-01-01", "le2020-12-31"]


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ([("family", "Smith")], "Smith*"),
        ([("family:exact", "Smith")], "Smith"),
        ([("family", "S")], "S"),
        ([("family", "Sm*")], "Sm*"),
    ],
)
def test_family_starts_with_becomes_a_trailing_wildcard(pairs: list[tuple[str, str]], expected: str) -> None:
    out = translate(*pairs, ("birthdate", "2010-10-22"))
    assert ("family", expected) in out


def test_given_and_postcode_are_strings_too() -> None:
    out = translate(*BASE, ("given", "Jane"), ("given:exact", "Anne"), ("address-postalcode", "LS1"))
    assert ("given", "Jane*") in out and ("given", "Anne") in out and ("address-postalcode", "LS1*") in out


def test_contains_and_or_values_are_400_naming_the_parameter() -> None:
    with pytest.raises(InvalidSearchParameter, match="':contains' is not supported on 'family'"):
        translate(("family:contains", "mit"), ("birthdate", "2010"))
    with pytest.raises(InvalidSearchParameter, match="'given'"):
        translate(*BASE, ("given", "Jane,John"))


def test_fuzzy_sends_values_as_they_are_and_the_flag() -> None:
    out = translate(("family", "Smyth"), ("given", "Jayne"), ("birthdate", "2010-10-22"), ("_fuzzy-match", "true"))
    assert ("family", "Smyth") in out and ("given", "Jayne") in out and ("_fuzzy-match", "true") in out


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("female", "female"),
        ("http://hl7.org/fhir/administrative-gender|male", "male"),
        ("|other", "other"),
    ],
)
def test_gender(raw: str, expected: str) -> None:
    assert ("gender", expected) in translate(*BASE, ("gender", raw))


@pytest.mark.parametrize(
    "name, raw",
    [
        ("gender", "dog"),
        ("gender", "http://example.org|male"),
        ("gender", "http://hl7.org/fhir/administrative-gender|"),
        ("gender:not", "male"),
        ("gender:missing", "true"),
    ],
)
def test_gender_errors(name: str, raw: str) -> None:
    with pytest.raises(InvalidSearchParameter, match="gender"):
        translate(*BASE, (name, raw))


@pytest.mark.parametrize(
    "name, raw",
    [
        ("general-practitioner", "Y12345"),
        ("general-practitioner", "Organization/Y12345"),
        ("general-practitioner:identifier", "https://fhir.nhs.uk/Id/ods-organization-code|Y12345"),
        ("general-practitioner:identifier", "Y12345"),
    ],
)
def test_general_practitioner_forms(name: str, raw: str) -> None:
    assert ("general-practitioner", "Y12345") in translate(*BASE, (name, raw))


@pytest.mark.parametrize(
    "name, raw",
    [
        ("general-practitioner", "Practitioner/G1"),
        ("general-practitioner:identifier", "http://example.org|Y1"),
        ("general-practitioner:identifier", "https://fhir.nhs.uk/Id/ods-organization-code|"),
    ],
)
def test_general_practitioner_errors(name: str, raw: str) -> None:
    with pytest.raises(InvalidSearchParameter, match="general-practitioner"):
        translate(*BASE, (name, raw))


def test_email_phone_and_flags() -> None:
    out = translate(
        *BASE, ("email", "a@b.c"), ("phone", "01632960587"), ("_exact-match", "true"), ("_history", "false")
    )
    assert {("email", "a@b.c"), ("phone", "01632960587"), ("_exact-match", "true"), ("_history", "false")} <= set(out)
    with pytest.raises(InvalidSearchParameter, match="_history"):
        translate(*BASE, ("_history", "yes"))


@pytest.mark.parametrize(
    "pairs",
    [
        [("family", "Smith")],
        [("birthdate", "2010")],
        [("given", "Jane"), ("gender", "female")],
    ],
)
def test_minimum_search_data_checked_locally(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidSearchParameter, match="family and birthdate"):
        translate(*pairs)


@pytest.mark.parametrize(
    "pairs, ok",
    [
        ([("given", "J"), ("family", "S"), ("birthdate", "2010")], True),
        ([("family", "S"), ("birthdate", "2010"), ("gender", "female"), ("address-postalcode", "LS1")], True),
        ([("given", "J"), ("birthdate", "2010"), ("gender", "female"), ("address-postalcode", "LS1")], True),
        ([("family", "S"), ("birthdate", "2010")], False),
    ],
)
def test_fuzzy_minimums(pairs: list[tuple[str, str]], ok: bool) -> None:
    pairs = pairs + [("_fuzzy-match", "true")]
    if ok:
        assert ("_fuzzy-match", "true") in translate(*pairs)
    else:
        with pytest.raises(InvalidSearchParameter, match="fuzzy"):
            translate(*pairs)


def test_missing_modifier_is_400() -> None:
    with pytest.raises(InvalidSearchParameter, match="':missing' is not supported on 'family'"):
        translate(("family:missing", "false"), ("birthdate", "2010"))
