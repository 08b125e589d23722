"""Typed search-parameter parsing: tokens, strings, dates, references, escaping."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.fhir.errors import InvalidSearchParameter
from server.fhir.search_params import (
    DATE_PREFIXES,
    DateValue,
    MissingValue,
    ReferenceValue,
    SearchParamSpec,
    StringValue,
    TokenValue,
    escape,
    fhir_date_range,
    parse_date,
    parse_param,
    parse_reference,
    parse_token,
    split_unescaped,
)

TOKEN = SearchParamSpec("code", "token", "a token")
STRING = SearchParamSpec("family", "string", "a string")
DATE = SearchParamSpec("birthdate", "date", "a date")
REF = SearchParamSpec("patient", "reference", "a reference", target_types=("Patient",))
SUBJECT = SearchParamSpec("subject", "reference", "any reference", target_types=("Patient", "Group"))

UTC = timezone.utc
# Text with the characters FHIR search escapes, plus ordinary ones.
fhir_text = st.text(alphabet=st.sampled_from(list("ab|,\\$ z9-.é")), min_size=1, max_size=12)


# -- escaping ---------------------------------------------------------------------------------


@given(fhir_text)
def test_escape_then_split_round_trips(text: str) -> None:
    for sep in (",", "|", "$"):
        assert split_unescaped(escape(text), sep) == [text]


@given(st.lists(fhir_text, min_size=1, max_size=4))
def test_escaped_values_joined_by_comma_split_back(values: list[str]) -> None:
    joined = ",".join(escape(v) for v in values)
    assert split_unescaped(joined, ",") == values


def test_escape_known_characters() -> None:
    assert escape(r"a,b|c\d$e") == r"a\,b\|c\\d\$e"


# -- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("http://s|123", TokenValue("http://s", "123")),
        ("|123", TokenValue(None, "123")),
        ("123", TokenValue(None, "123", any_system=True)),
        ("http://s|", TokenValue("http://s", None)),
        (r"a\|b", TokenValue(None, "a|b", any_system=True)),
        (r"s|a\|b", TokenValue("s", "a|b")),
    ],
)
def test_token_forms(raw: str, expected: TokenValue) -> None:
    assert parse_token("code", raw) == expected


@pytest.mark.parametrize("raw", ["", "|"])
def test_token_rejects_empty(raw: str) -> None:
    with pytest.raises(InvalidSearchParameter, match="'code'"):
        parse_token("code", raw)


def test_token_matching() -> None:
    assert TokenValue("s", "1").matches("s", "1")
    assert not TokenValue("s", "1").matches("t", "1")
    assert TokenValue(None, "1", any_system=True).matches("anything", "1")
    assert TokenValue(None, "1").matches(None, "1") and not TokenValue(None, "1").matches("s", "1")
    assert TokenValue("s", None).matches("s", "whatever")


@given(system=st.one_of(st.none(), fhir_text), code=st.one_of(st.none(), fhir_text), any_system=st.booleans())
def test_token_text_round_trips(system: str | None, code: str | None, any_system: bool) -> None:
    if any_system:
        system = None
        if code is None:
            code = "x"
    elif system is None and code is None:
        code = "x"
    token = TokenValue(system, code, any_system)
    parsed = parse_param(TOKEN, None, token.text())
    assert parsed.values == (token,)


@given(st.lists(fhir_text, min_size=1, max_size=4))
def test_comma_is_or_and_escaped_comma_is_not(codes: list[str]) -> None:
    raw = ",".join(escape(c) for c in codes)
    parsed = parse_param(TOKEN, None, raw)
    assert parsed.values == tuple(TokenValue(None, c, any_system=True) for c in codes)
    assert parsed.text() == raw


# -- strings ----------------------------------------------------------------------------------


@given(st.lists(fhir_text, min_size=1, max_size=3), st.sampled_from([None, "exact", "contains"]))
def test_string_values_round_trip(values: list[str], modifier: str | None) -> None:
    raw = ",".join(escape(v) for v in values)
    parsed = parse_param(STRING, modifier, raw)
    assert parsed.values == tuple(StringValue(v) for v in values)
    assert parsed.modifier == modifier
    assert parse_param(STRING, modifier, parsed.text()) == parsed


def test_string_empty_value_and_bad_modifier() -> None:
    with pytest.raises(InvalidSearchParameter, match="'family'"):
        parse_param(STRING, None, "")
    with pytest.raises(InvalidSearchParameter, match="'family'"):
        parse_param(STRING, None, "Smith,")
    with pytest.raises(InvalidSearchParameter, match=":below"):
        parse_param(STRING, "below", "Smith")


@pytest.mark.parametrize("raw, expected", [("true", True), ("false", False)])
def test_missing_modifier(raw: str, expected: bool) -> None:
    assert parse_param(STRING, "missing", raw).values == (MissingValue(expected),)


def test_missing_modifier_rejects_other_values() -> None:
    with pytest.raises(InvalidSearchParameter, match="family:missing"):
        parse_param(STRING, "missing", "yes")


# -- dates ------------------------------------------------------------------------------------


def _day_after(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1)


@st.composite
def partial_dates(draw: st.DrawFn) -> tuple[str, str, datetime, datetime]:
    """(literal, precision, expected start, expected end) for year, month and day values."""
    d = draw(st.dates(min_value=date(1, 1, 1), max_value=date(9998, 12, 31)))
    precision = draw(st.sampled_from(["year", "month", "day"]))
    if precision == "year":
        return f"{d.year:04d}", precision, datetime(d.year, 1, 1, tzinfo=UTC), datetime(d.year + 1, 1, 1, tzinfo=UTC)
    if precision == "month":
        days = calendar.monthrange(d.year, d.month)[1]
        start = datetime(d.year, d.month, 1, tzinfo=UTC)
        return f"{d.year:04d}-{d.month:02d}", precision, start, start + timedelta(days=days)
    return d.isoformat(), precision, datetime(d.year, d.month, d.day, tzinfo=UTC), _day_after(d)


@given(partial_dates(), st.sampled_from(("",) + DATE_PREFIXES))
def test_any_valid_date_with_prefix_parses_to_its_range(case: tuple, prefix: str) -> None:
    literal, precision, start, end = case
    value = parse_date("birthdate", prefix + literal)
    assert value.prefix == (prefix or "eq")
    assert value.literal == literal
    assert value.precision == precision
    assert (value.start, value.end) == (start, end)
    assert value.start < value.end
    assert value.text() == (prefix or "eq") + literal
    assert parse_date("birthdate", value.text()) == value


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.sampled_from(["minute", "second", "fraction"]),
    st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: m - m % 15),
)
def test_date_times_parse_to_instants_of_their_precision(moment: datetime, precision: str, offset: int) -> None:
    sign = "+" if offset >= 0 else "-"
    tz = "Z" if offset == 0 else f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    literal = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}"
    step = timedelta(minutes=1)
    if precision != "minute":
        literal += f":{moment.second:02d}"
        step = timedelta(seconds=1)
    if precision == "fraction":
        literal += f".{moment.microsecond:06d}"
        step = timedelta(microseconds=1)
    value = parse_date("date", literal + tz)
    local = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    if precision == "minute":
        local = local.replace(second=0, microsecond=0)
    elif precision == "second":
        local = local.replace(microsecond=0)
    assert value.precision == "time"
    assert value.start == local
    assert value.end - value.start == step


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ge",
        "2010-13",
        "2010-02-30",
        "2010-1-01",
        "10-10-2010",
        "xx2010",
        "2010-10-10T25:00",
        "2010-10-10T10:00+25:00",
        "0000",
        "9999",
        "9999-12-31",
        "0001-01-01T00:00+01:00",
        "2010-10-10T10",
    ],
)
def test_malformed_or_unrepresentable_dates_are_400_naming_the_parameter(raw: str) -> None:
    with pytest.raises(InvalidSearchParameter, match="'birthdate'"):
        parse_date("birthdate", raw)


def test_date_prefix_semantics_against_a_target_day() -> None:
    day = parse_date("d", "2010-10-22")
    target = (day.start, day.end)
    before = (day.start - timedelta(days=3), day.start - timedelta(days=2))
    after = (day.end + timedelta(days=2), day.end + timedelta(days=3))
    table = {
        "eq": (True, False, False),
        "ne": (False, True, True),
        "gt": (False, False, True),
        "lt": (False, True, False),
        "ge": (True, False, True),
        "le": (True, True, False),
        "sa": (False, False, True),
        "eb": (False, True, False),
    }
    for prefix, expected in table.items():
        value = parse_date("d", prefix + "2010-10-22")
        assert (value.matches(*target), value.matches(*before), value.matches(*after)) == expected, prefix


def test_partial_date_eq_contains_days_within_it() -> None:
    month = parse_date("d", "2010-10")
    inside = parse_date("d", "2010-10-31")
    outside = parse_date("d", "2010-11-01")
    assert month.matches(inside.start, inside.end)
    assert not month.matches(outside.start, outside.end)


def test_ap_is_approximate_and_never_overflows() -> None:
    value = parse_date("d", "ap2010-10-22")
    near = parse_date("d", "2010-10-23")
    far = parse_date("d", "2000-01-01")
    assert value.matches(near.start, near.end)
    assert not value.matches(far.start, far.end)
    earliest = parse_date("d", "ap0001-01-01")
    assert earliest.matches(earliest.start, earliest.end)


def test_fhir_date_range_of_elements() -> None:
    assert fhir_date_range("2010") == (datetime(2010, 1, 1, tzinfo=UTC), datetime(2011, 1, 1, tzinfo=UTC))
    assert fhir_date_range("not a date") is None


# -- references -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, modifier, expected",
    [
        ("123", None, ReferenceValue("Patient", "123")),
        ("Patient/123", None, ReferenceValue("Patient", "123")),
        ("http://example.org/fhir/Patient/123", None, ReferenceValue("Patient", "123")),
        ("123", "Patient", ReferenceValue("Patient", "123")),
    ],
)
def test_reference_forms(raw: str, modifier: str | None, expected: ReferenceValue) -> None:
    assert parse_param(REF, modifier, raw).values == (expected,)


def test_reference_without_single_target_keeps_type_open() -> None:
    assert parse_param(SUBJECT, None, "123").values == (ReferenceValue(None, "123"),)
    assert parse_param(SUBJECT, "Group", "g1").values == (ReferenceValue("Group", "g1"),)


@pytest.mark.parametrize(
    "raw, modifier",
    [
        ("Group/1", None),  # not a declared target
        ("Patient/1", "Group"),  # type modifier disagrees with the value
        ("Patient/bad$id", None),  # id syntax
        ("a/b/c", None),  # no type segment
    ],
)
def test_reference_errors_name_the_parameter(raw: str, modifier: str | None) -> None:
    with pytest.raises(InvalidSearchParameter, match="patient"):
        parse_param(REF, modifier, raw)


def test_reference_identifier_modifier_and_chain() -> None:
    by_modifier = parse_param(REF, "identifier", "https://fhir.nhs.uk/Id/nhs-number|9000000009")
    by_chain = parse_param(REF, None, "https://fhir.nhs.uk/Id/nhs-number|9000000009", chain="identifier")
    assert by_modifier == by_chain
    assert by_chain.key() == "patient:identifier"
    assert by_chain.values[0].identifier == TokenValue("https://fhir.nhs.uk/Id/nhs-number", "9000000009")
    assert by_chain.text() == "https://fhir.nhs.uk/Id/nhs-number|9000000009"


def test_unsupported_chain_is_400() -> None:
    with pytest.raises(InvalidSearchParameter, match="patient.name"):
        parse_param(REF, None, "Smith", chain="name")
    with pytest.raises(InvalidSearchParameter, match="family.identifier"):
        parse_param(STRING, None, "x|y", chain="identifier")


@given(st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True))
def test_any_valid_id_round_trips_as_a_reference(rid: str) -> None:
    value = parse_reference("patient", f"Patient/{rid}", None, ("Patient",))
    assert value == ReferenceValue("Patient", rid)
    assert parse_param(REF, None, value.text()).values == (value,)


@settings(max_examples=50)
@given(st.text(min_size=1, max_size=20))
def test_parsers_raise_only_invalid_search_parameter(raw: str) -> None:
    """Whatever a client sends, the outcome is a value or a 400, never another exception."""
    for spec in (TOKEN, STRING, DATE, REF):
        try:
            parse_param(spec, None, raw)
        except InvalidSearchParameter:
            pass


def test_date_value_is_a_value_object() -> None:
    value = parse_param(DATE, None, "2010").values[0]
    assert isinstance(value, DateValue)
    assert value == parse_param(DATE, None, "eq2010").values[0] and hash(value) == hash(
        parse_param(DATE, None, "2010").values[0]
    )
    assert value != parse_param(DATE, None, "2011").values[0]
    assert (value.prefix, value.literal, value.precision) == ("eq", "2010", "year")
    assert (value.start, value.end) == (
        datetime(2010, 1, 1, tzinfo=timezone.utc),
        datetime(2011, 1, 1, tzinfo=timezone.utc),
    )
