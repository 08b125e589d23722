"""Deeply nested PAS JSON (issue 8): measured without recursion, refused at intake, and
never able to break the rendering of a field problem."""

from __future__ import annotations

import orjson
import pytest

from mappings.engine import Problem
from server.pas.errors import PASError
from server.pas.json_depth import MAX_JSON_DEPTH, echoable, nested_deeper_than


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


@pytest.mark.parametrize("depth", [0, 1, 5, MAX_JSON_DEPTH])
def test_depth_up_to_the_limit_passes(depth: int) -> None:
    assert not nested_deeper_than(nested(depth), MAX_JSON_DEPTH)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 100_000])
def test_deeper_is_detected_without_recursion(depth: int) -> None:
    assert nested_deeper_than(nested(depth), MAX_JSON_DEPTH)


def test_wide_shallow_values_pass() -> None:
    assert not nested_deeper_than({"allergies": [{"code": str(i)} for i in range(10_000)]}, 3)


def test_a_field_problem_with_a_deep_value_still_renders() -> None:
    """orjson writes at most 255 levels and repr() fails near 1,000: before, the error
    about such a value was itself a 500."""
    deep = nested(1000)
    error = PASError(400, problems=[Problem("surname", deep, "expected text")])
    body = orjson.loads(orjson.dumps(error.body("req-1")))
    assert body["errors"][0]["value"] == "(a value nested more than 8 levels deep)"
    outcome = error.outcome()
    assert "nested more than 8 levels" in outcome["issue"][0]["diagnostics"]
    orjson.dumps(outcome)


def test_shallow_values_are_echoed_as_sent() -> None:
    value = {"a": [1, 2, {"b": "c"}]}
    assert echoable(value) is value
    assert PASError(400, problems=[Problem("x", value, "bad")]).body("r")["errors"][0]["value"] == value
