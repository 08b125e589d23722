"""The one local search matcher (server.fhir.search_match): parameters parsed from raw
query text exactly as the server parses them, evaluated against resource dicts, and
checked against independent plain-Python oracles and against the laws of FHIR R4 search
(prefixes that partition, modifiers that complement, unions that are ORs)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.fhir.search_match import CODE_SYSTEMS, Unevaluable, check_evaluable, matches
from server.fhir.search_params import ParsedParam, SearchParamSpec, parse_param

SPECS = {
    s.name: s
    for s in (
        SearchParamSpec("code", "token", "", path="code"),
        SearchParamSpec("status", "token", "", path="status"),
        SearchParamSpec("identifier", "token", "", path="identifier"),
        SearchParamSpec("date", "date", "", path="recordedDate"),
        SearchParamSpec("period", "date", "", path="period"),
        SearchParamSpec("name", "string", "", path="name"),
        SearchParamSpec("note", "string", "", path="note"),
        SearchParamSpec("patient", "reference", "", path="patient", target_types=("Patient",)),
        SearchParamSpec("nopath", "token", ""),
        SearchParamSpec("number", "token", "", path="identifier|groupIdentifier"),  # a union path
        SearchParamSpec("group", "token", "", path="groupIdentifier"),
        SearchParamSpec("occurrence", "date", "", path="occurrenceDateTime|occurrencePeriod"),
    )
}
STATUS_SYSTEM = CODE_SYSTEMS["MedicationRequest.status"]
SYSTEMS = st.sampled_from(["http://snomed.info/sct", "https://dmd.nhs.uk", "urn:local"])
CODES = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)
CODINGS = st.lists(st.tuples(SYSTEMS, CODES), max_size=4)
DAYS = st.dates(min_value=date(1950, 1, 1), max_value=date(2040, 12, 31))
ASCII_WORD = st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True)


def param(raw_name: str, raw_value: str) -> ParsedParam:
    name, _, modifier = raw_name.partition(":")
    return parse_param(SPECS[name], modifier or None, raw_value)


def hit(resource: dict[str, Any], *query: tuple[str, str]) -> bool:
    return matches(resource, [param(n, v) for n, v in query], SPECS)


def concept(codings: list[tuple[str, str]]) -> dict[str, Any]:
    return {"coding": [{"system": s, "code": c} for s, c in codings]}


@given(CODINGS, SYSTEMS, CODES)
def test_token_system_and_code_against_a_codeable_concept(
    codings: list[tuple[str, str]], system: str, code: str
) -> None:
    resource = {"resourceType": "AllergyIntolerance", "code": concept(codings)}
    assert hit(resource, ("code", f"{system}|{code}")) == ((system, code) in codings)
    assert hit(resource, ("code", code)) == any(c == code for _, c in codings)  # any system
    assert hit(resource, ("code", f"{system}|")) == any(s == system for s, _ in codings)
    assert hit(resource, ("code:not", f"{system}|{code}")) == ((system, code) not in codings)
    assert hit(resource, ("code:missing", "true")) is False


@given(st.lists(CODES, min_size=1, max_size=4), CODES)
def test_or_within_a_parameter_and_and_across_parameters(wanted: list[str], code: str) -> None:
    resource = {"resourceType": "AllergyIntolerance", "code": concept([("urn:local", code)])}
    assert hit(resource, ("code", ",".join(wanted))) == (code in wanted)
    both = hit(resource, ("code", wanted[0]), ("code", wanted[-1]))
    assert both == (hit(resource, ("code", wanted[0])) and hit(resource, ("code", wanted[-1])))


@given(st.sampled_from(["active", "completed", "on-hold", "stopped"]), st.sampled_from(["active", "completed"]))
def test_code_elements_have_their_implied_system(status: str, wanted: str) -> None:
    resource = {"resourceType": "MedicationRequest", "status": status}
    assert hit(resource, ("status", wanted)) == (status == wanted)
    assert hit(resource, ("status", f"{STATUS_SYSTEM}|{wanted}")) == (status == wanted)
    assert hit(resource, ("status", f"urn:other|{wanted}")) is False
    assert hit(resource, ("status:not", wanted)) == (status != wanted)


@given(SYSTEMS, CODES)
def test_identifiers_match_system_and_value(system: str, value: str) -> None:
    resource = {"resourceType": "MedicationRequest", "identifier": [{"system": system, "value": value}]}
    assert hit(resource, ("identifier", f"{system}|{value}"))
    assert not hit(resource, ("identifier", f"{system}|{value}x"))


@given(DAYS, DAYS, st.sampled_from(["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]))
def test_day_dates_with_prefixes_against_a_plain_date_oracle(element: date, query: date, prefix: str) -> None:
    resource = {"resourceType": "AllergyIntolerance", "recordedDate": element.isoformat()}
    expected = {
        "eq": element == query,
        "ne": element != query,
        "gt": element > query,
        "lt": element < query,
        "ge": element >= query,
        "le": element <= query,
        "sa": element > query,
        "eb": element < query,
    }[prefix]
    assert hit(resource, ("date", f"{prefix}{query.isoformat()}")) == expected
    assert hit(resource, ("date", f"eq{element.year}")) is True  # a partial date is its whole range


@given(DAYS, st.one_of(st.none(), DAYS), DAYS)
def test_periods_with_an_open_end_are_unbounded(start: date, end: date | None, query: date) -> None:
    if end is not None and end < start:
        start, end = end, start
    resource = {
        "resourceType": "MedicationRequest",
        "period": {"start": start.isoformat(), **({"end": end.isoformat()} if end else {})},
    }
    # FHIR R4 ge: the target reaches past the searched day, or lies within it.
    assert hit(resource, ("period", f"ge{query.isoformat()}")) == (end is None or end > query or start == end == query)
    assert hit(resource, ("period", f"lt{query.isoformat()}")) == (start < query)


@given(ASCII_WORD, ASCII_WORD)
def test_strings_start_with_ignoring_case_exact_is_exact(text: str, query: str) -> None:
    resource = {"resourceType": "Patient", "note": text}
    assert hit(resource, ("note", query)) == text.lower().startswith(query.lower())
    assert hit(resource, ("note:contains", query)) == (query.lower() in text.lower())
    assert hit(resource, ("note:exact", query)) == (text == query)


@given(st.lists(ASCII_WORD, min_size=1, max_size=3), ASCII_WORD)
def test_strings_search_every_part_of_a_human_name(given_names: list[str], family: str) -> None:
    resource = {"resourceType": "Patient", "name": [{"family": family, "given": given_names}]}
    assert hit(resource, ("name", family.upper()))
    assert all(hit(resource, ("name", g[:1])) for g in given_names)


@given(st.booleans(), st.sampled_from(["code", "date", "note", "patient"]))
def test_missing_is_about_presence(present: bool, name: str) -> None:
    values = {
        "code": concept([("urn:local", "x")]),
        "date": "2020-01-01",
        "note": "text",
        "patient": {"reference": "Patient/1"},
    }
    path = SPECS[name].path
    assert path is not None
    resource: dict[str, Any] = {"resourceType": "AllergyIntolerance", **({path: values[name]} if present else {})}
    assert hit(resource, (f"{name}:missing", "true")) == (not present)
    assert hit(resource, (f"{name}:missing", "false")) == present


@settings(max_examples=50)
@given(st.from_regex(r"[A-Za-z0-9\-]{1,12}", fullmatch=True), st.from_regex(r"[A-Za-z0-9\-]{1,12}", fullmatch=True))
def test_references_by_id_relative_or_absolute(target: str, asked: str) -> None:
    for reference in (f"Patient/{target}", f"https://example.org/fhir/Patient/{target}"):
        resource = {"resourceType": "AllergyIntolerance", "patient": {"reference": reference}}
        assert hit(resource, ("patient", asked)) == (asked == target)
        assert hit(resource, ("patient", f"Patient/{asked}")) == (asked == target)
        # Two independent draws are almost never equal: check the matching case every time too.
        assert hit(resource, ("patient", target)) and hit(resource, ("patient", f"Patient/{target}"))


def test_absent_elements_never_match_a_value_filter() -> None:
    empty = {"resourceType": "AllergyIntolerance"}
    for query in (("code", "x"), ("date", "ge2000"), ("note", "a"), ("patient", "1"), ("status", "active")):
        assert hit(empty, query) is False
    assert hit(empty, ("code:not", "x")) is True  # FHIR :not includes resources without the element


def test_text_modifier_searches_text_and_display() -> None:
    resource = {
        "resourceType": "AllergyIntolerance",
        "code": {
            "text": "Penicillin V",
            "coding": [{"system": "http://snomed.info/sct", "code": "91936005", "display": "Allergy to penicillin"}],
        },
    }
    assert hit(resource, ("code:text", "penic"))
    assert hit(resource, ("code:text", "allergy to"))
    assert not hit(resource, ("code:text", "latex"))


def test_reference_identifier_modifier() -> None:
    resource = {
        "resourceType": "AllergyIntolerance",
        "patient": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}},
    }
    assert hit(resource, ("patient:identifier", "https://fhir.nhs.uk/Id/nhs-number|9000000009"))
    assert not hit(resource, ("patient:identifier", "https://fhir.nhs.uk/Id/nhs-number|9000000017"))


def test_what_cannot_be_evaluated_raises_instead_of_matching_everything() -> None:
    resource = {"resourceType": "AllergyIntolerance", "code": concept([("urn:local", "x")])}
    with pytest.raises(Unevaluable, match="no element path"):
        matches(resource, [ParsedParam("nopath", None, ())], SPECS)
    with pytest.raises(Unevaluable, match="no declaration"):
        matches(resource, [ParsedParam("undeclared", None, ())], SPECS)
    with pytest.raises(Unevaluable, match=":above"):
        check_evaluable(ParsedParam("code", "above", ()), SPECS["code"])
    quantity = SearchParamSpec("value", "quantity", "", path="valueQuantity")  # type: ignore[arg-type]
    with pytest.raises(Unevaluable, match="quantity"):
        check_evaluable(ParsedParam("value", None, ()), quantity)
    assert check_evaluable(ParsedParam("patient", "Patient", ()), SPECS["patient"]) is SPECS["patient"]


# --- laws of FHIR R4 search the matcher keeps ------------------------------------------------

INSTANTS = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(timezone.utc)
).map(lambda d: d.replace(microsecond=0))
PRECISIONS = st.sampled_from(["year", "month", "day"])


def at_precision(day: date, precision: str) -> str:
    return {"year": f"{day.year:04d}", "month": f"{day.year:04d}-{day.month:02d}", "day": day.isoformat()}[precision]


def definite(when: datetime, as_day: bool) -> str:
    """A recorded date at least as precise as any search value (year, month or day): a
    day or an instant. (A coarser one, `2015` against `ge2015-06-01`, straddles the value
    and so satisfies both ge and lt, as FHIR R4 means it to.)"""
    return when.date().isoformat() if as_day else when.strftime("%Y-%m-%dT%H:%M:%SZ")


@settings(max_examples=300)
@given(INSTANTS, st.booleans(), DAYS, PRECISIONS)
def test_ge_and_lt_partition_resources_with_a_definite_date(
    when: datetime, as_day: bool, query: date, precision: str
) -> None:
    resource = {"resourceType": "AllergyIntolerance", "recordedDate": definite(when, as_day)}
    value = at_precision(query, precision)
    ge, lt = hit(resource, ("date", f"ge{value}")), hit(resource, ("date", f"lt{value}"))
    assert ge != lt  # exactly one
    gt, le = hit(resource, ("date", f"gt{value}")), hit(resource, ("date", f"le{value}"))
    assert gt != le
    eq, ne = hit(resource, ("date", f"eq{value}")), hit(resource, ("date", f"ne{value}"))
    assert eq != ne
    assert ge == (gt or eq) and le == (lt or eq)
    assert not hit(resource, ("date", f"sa{value}")) or gt  # starts after: later
    assert not hit(resource, ("date", f"eb{value}")) or lt  # ends before: earlier


@settings(max_examples=200)
@given(INSTANTS, DAYS, PRECISIONS, st.sampled_from(["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]))
def test_a_period_is_searched_as_the_range_it_covers(start: datetime, query: date, precision: str, prefix: str) -> None:
    """A closed Period whose bounds are one instant is searched like that instant."""
    instant = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    value = f"{prefix}{at_precision(query, precision)}"
    as_period = {"resourceType": "MedicationRequest", "period": {"start": instant, "end": instant}}
    as_date = {"resourceType": "AllergyIntolerance", "recordedDate": instant}
    assert hit(as_period, ("period", value)) == hit(as_date, ("date", value))


@given(DAYS, DAYS)
def test_an_open_end_is_ongoing_and_an_open_start_is_since_ever(bound: date, query: date) -> None:
    """FHIR R4: a Period without an end runs to +infinity, without a start from -infinity."""
    ongoing = {"resourceType": "MedicationRequest", "period": {"start": bound.isoformat()}}
    assert hit(ongoing, ("period", f"gt{query.isoformat()}"))  # whatever the day: later than it
    assert hit(ongoing, ("period", f"ge{query.isoformat()}"))
    assert hit(ongoing, ("period", f"sa{query.isoformat()}")) == (bound > query)
    assert not hit(ongoing, ("period", f"eq{query.isoformat()}"))  # never within one day
    since_ever = {"resourceType": "MedicationRequest", "period": {"end": bound.isoformat()}}
    assert hit(since_ever, ("period", f"lt{query.isoformat()}"))
    assert hit(since_ever, ("period", f"le{query.isoformat()}"))
    assert hit(since_ever, ("period", f"eb{query.isoformat()}")) == (bound < query)
    assert hit(ongoing, ("period", "gt9999-12-30")) and hit(since_ever, ("period", "lt0001-01-02"))


@given(st.one_of(st.none(), CODINGS), SYSTEMS, CODES, st.booleans())
def test_not_is_the_complement_of_the_match_where_the_element_is(
    codings: list[tuple[str, str]] | None, system: str, code: str, any_system: bool
) -> None:
    resource: dict[str, Any] = {"resourceType": "AllergyIntolerance"}
    if codings is not None:
        resource["code"] = concept(codings)
    token = code if any_system else f"{system}|{code}"
    if codings is not None:  # the element is there (a CodeableConcept, codings or none)
        assert hit(resource, ("code:not", token)) != hit(resource, ("code", token))
    else:  # FHIR R4: :not also finds the resources without the element
        assert hit(resource, ("code:not", token)) and not hit(resource, ("code", token))
    assert hit(resource, ("code:missing", "true")) != hit(resource, ("code:missing", "false"))


@given(
    st.lists(st.tuples(SYSTEMS, CODES), max_size=3),
    st.one_of(st.none(), st.tuples(SYSTEMS, CODES)),
    SYSTEMS,
    CODES,
    st.sampled_from([None, "not", "missing"]),
)
def test_a_union_path_is_the_or_of_its_branches(
    identifiers: list[tuple[str, str]], group: tuple[str, str] | None, system: str, code: str, modifier: str | None
) -> None:
    resource: dict[str, Any] = {"resourceType": "MedicationRequest"}
    if identifiers:
        resource["identifier"] = [{"system": s, "value": v} for s, v in identifiers]
    if group is not None:
        resource["groupIdentifier"] = {"system": group[0], "value": group[1]}
    token = "true" if modifier == "missing" else f"{system}|{code}"
    suffix = f":{modifier}" if modifier else ""
    on_union = hit(resource, (f"number{suffix}", token))
    on_item, on_group = hit(resource, (f"identifier{suffix}", token)), hit(resource, (f"group{suffix}", token))
    # The positive match is either branch; :not and :missing=true (absence) need both branches.
    assert on_union == ((on_item and on_group) if modifier else (on_item or on_group))


@given(DAYS, st.booleans(), DAYS)
def test_a_choice_element_is_searched_whichever_type_it_has(day: date, as_period: bool, query: date) -> None:
    """occurrence[x]: a dateTime or a Period, one search parameter over both."""
    value = (
        {"occurrencePeriod": {"start": day.isoformat(), "end": day.isoformat()}}
        if as_period
        else {"occurrenceDateTime": day.isoformat()}
    )
    resource = {"resourceType": "ServiceRequest", **value}
    assert hit(resource, ("occurrence", f"eq{query.isoformat()}")) == (day == query)
    assert hit(resource, ("occurrence", f"ge{query.isoformat()}")) == (day >= query)


@given(st.lists(DAYS, max_size=6), DAYS, st.sampled_from(["ge", "lt", "eq"]))
def test_filtering_twice_is_filtering_once(days: list[date], query: date, prefix: str) -> None:
    """The PAS composites' NHS records are matched by the wrapped provider and again by
    the composite: that may change nothing."""
    resources = [{"resourceType": "AllergyIntolerance", "recordedDate": d.isoformat()} for d in days]
    params = [param("date", f"{prefix}{query.isoformat()}")]
    once = [r for r in resources if matches(r, params, SPECS)]
    assert [r for r in once if matches(r, params, SPECS)] == once
    assert len(once) == sum(1 for d in days if {"ge": d >= query, "lt": d < query, "eq": d == query}[prefix])
