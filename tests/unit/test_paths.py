"""The one path syntax (mappings/paths.py): reads, writes, selectors, unions and refusals.

Once three walkers: the PAS mapping paths, the STU3 -> R4 rules' get/put and the search
layer's values_at; their tests are here, against the one module."""

from __future__ import annotations

import pytest

from mappings.paths import PathError, branches, get_path, parse_path, parse_union, set_path, values_at

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def test_selector_may_hold_dots_and_slashes() -> None:
    segs = parse_path(f"identifier[system={NHS}].value")
    assert [s.text() for s in segs] == [f"identifier[system={NHS}]", "value"]


@pytest.mark.parametrize("bad", ["", "a..b", "a[", "a]", "a[x]", "a[=b]", "a[k=]", "1a", "a.b[0"])
def test_bad_paths_are_refused(bad: str) -> None:
    with pytest.raises(PathError):
        parse_path(bad)


def test_write_then_read_creates_selected_items() -> None:
    resource: dict = {}
    set_path(resource, f"identifier[system={NHS}].value", "9000000009")
    set_path(resource, "identifier[system=local].value", "H1")
    set_path(resource, "name[0].given", ["Jane", "Anne"])
    set_path(resource, "name[0].family", "Smith")
    set_path(resource, "name[0].prefix[0]", "Mrs")
    assert resource == {
        "identifier": [{"system": NHS, "value": "9000000009"}, {"system": "local", "value": "H1"}],
        "name": [{"given": ["Jane", "Anne"], "family": "Smith", "prefix": ["Mrs"]}],
    }
    assert get_path(resource, f"identifier[system={NHS}].value") == "9000000009"
    assert get_path(resource, "name[0].given") == ["Jane", "Anne"]
    assert get_path(resource, "name[1].family") is None
    assert get_path(resource, "telecom[system=phone].value") is None


def test_an_index_may_not_leave_a_gap() -> None:
    with pytest.raises(PathError, match=r"before line\[0\]"):
        set_path({}, "address[0].line[1]", "x")


def test_index_overwrites_an_existing_item() -> None:
    resource = {"line": ["a", "b"]}
    set_path(resource, "line[1]", "c")
    assert resource == {"line": ["a", "c"]}


def test_selector_cannot_be_the_last_segment_on_write() -> None:
    with pytest.raises(PathError):
        set_path({}, "telecom[system=phone]", "x")


def test_reading_through_a_non_object_gives_none() -> None:
    assert get_path({"name": "oops"}, "name[0].family") is None
    assert get_path({"birthDate": "2010-01-01"}, "birthDate.value") is None


# --- what the STU3 -> R4 rules engine needs ------------------------------------------


def test_get_and_put_path() -> None:
    assert get_path({"a": {"b": 1}}, "a.b") == 1
    assert get_path({"a": [1]}, "a.b") is None
    target: dict = {}
    set_path(target, "a.b", [1], extend=True)
    set_path(target, "a.b", [2], extend=True)
    set_path(target, "a.c", "x", extend=True)
    assert target == {"a": {"b": [1, 2], "c": "x"}}


def test_without_extend_a_list_is_replaced() -> None:
    target = {"a": [1]}
    set_path(target, "a", [2])
    assert target == {"a": [2]}


# --- what PAS records need -----------------------------------------------------------


def test_numbered_hl7_fields_are_names() -> None:
    record: dict = {}
    set_path(record, "PID.5.given", ["Jane"])
    set_path(record, "PID.7.1", "20100101")
    assert record == {"PID": {"5": {"given": ["Jane"]}, "7": {"1": "20100101"}}}
    assert get_path(record, "PID.7.1") == "20100101"
    assert [s.name for s in parse_path("PID.32.1")] == ["PID", "32", "1"]


def test_a_write_through_a_value_is_a_path_error() -> None:
    with pytest.raises(PathError, match="not inside an object"):
        set_path({"a": "text"}, "a.b", 1)


# --- what search, _sort and _include need ----------------------------------------------


def test_values_at_flattens_lists_at_every_step() -> None:
    resource = {"name": [{"given": ["Jane", "Anne"]}, {"given": ["J"]}, "odd"], "gender": None}
    assert values_at(resource, "name.given") == ["Jane", "Anne", "J"]
    assert values_at(resource, "gender") == [None]  # present (JSON null) is not absent
    assert values_at(resource, "birthDate") == []
    assert values_at(resource, "") == []


def test_a_union_reads_each_branch_in_turn() -> None:
    resource = {"identifier": [{"value": "1"}], "groupIdentifier": {"value": "G"}}
    assert values_at(resource, "identifier|groupIdentifier") == [{"value": "1"}, {"value": "G"}]
    assert branches("occurrenceDateTime | occurrencePeriod") == ["occurrenceDateTime", "occurrencePeriod"]
    assert len(parse_union("a|b.c")) == 2


def test_a_bar_inside_a_selector_is_not_a_union() -> None:
    assert branches("identifier[system=a|b].value") == ["identifier[system=a|b].value"]


def test_selectors_pick_within_each_list() -> None:
    resource = {
        "telecom": [
            {"system": "phone", "value": "1"},
            {"system": "email", "value": "e"},
            {"system": "phone", "value": "2"},
        ],
        "name": [{"family": "A"}, {"family": "B"}],
    }
    assert values_at(resource, "telecom[system=phone].value") == ["1", "2"]
    assert get_path(resource, "telecom[system=phone].value") == "1"  # the first match
    assert values_at(resource, "name[1].family") == ["B"]
    assert values_at(resource, "name[2].family") == []


@pytest.mark.parametrize("union", ["a|b", "a|"])
def test_a_union_can_be_read_but_not_written_or_read_as_one(union: str) -> None:
    with pytest.raises(PathError, match="union"):
        parse_path(union)
    with pytest.raises(PathError, match="union"):
        set_path({}, union, 1)
