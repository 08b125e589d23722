"""The mapping FHIR path syntax: reads, writes, selectors and refusals."""

from __future__ import annotations

import pytest

from mappings.fhir_path import PathError, get_path, parse_path, set_path

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
