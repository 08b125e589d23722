"""The one path module (mappings/paths.py) as properties over generated paths and
JSON-like trees: reading never raises, a write is read back, the two readers agree, a
union is the concatenation of its branches, and on plain dotted paths the module does
exactly what the three walkers it replaced did (their code is kept here as oracles)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mappings.paths import PathError, Segment, get_path, parse_path, set_path, values_at

# Few names, so generated paths and generated trees meet often.
NAMES = st.sampled_from(["a", "b", "system", "7"])
KEYS = st.sampled_from(["system", "url"])
VALUES = st.sampled_from(["x", "y", "https://fhir.nhs.uk/Id/nhs-number", "a|b"])  # dots and bars in selectors
SEGMENTS = st.one_of(
    NAMES.map(Segment),
    st.builds(lambda n, i: Segment(n, index=i), NAMES, st.sampled_from([0, 0, 0, 1, 2])),  # mostly writable
    st.builds(lambda n, k, v: Segment(n, key=k, value=v), NAMES, KEYS, VALUES),
)
SEGMENT_LISTS = st.lists(SEGMENTS, min_size=1, max_size=4)
PLAIN_PATHS = st.lists(NAMES, min_size=1, max_size=4).map(".".join)

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), VALUES, st.text(max_size=3))
TREES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(NAMES, KEYS), children, max_size=4),
    ),
    max_leaves=20,
)
OBJECTS = st.dictionaries(st.one_of(NAMES, KEYS), TREES, max_size=4)


@st.composite
def planted(draw: st.DrawFn, paths: int = 1) -> tuple[Any, list[list[Segment]]]:
    """A tree and paths into it; most of the time something was written at each path
    first (by the writer under test), so that the readers find values."""
    tree: Any = draw(st.one_of(st.builds(dict), OBJECTS, TREES))
    chosen = [draw(SEGMENT_LISTS) for _ in range(paths)]
    for segments in chosen:
        if isinstance(tree, dict) and draw(st.integers(0, 3)):
            try:
                set_path(tree, text(segments), draw(TREES))
            except PathError:
                pass
    return tree, chosen


def text(segments: list[Segment]) -> str:
    return ".".join(s.text() for s in segments)


# --- the walkers this module replaced, as oracles ----------------------------------------


def old_get(source: Any, path: str) -> Any:
    """STU3 engine get_path and PAS engine get_pas (the same walk)."""
    current = source
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def old_values_at(resource: Any, path: str) -> list[Any]:
    """server/fhir/paths.py values_at (single path)."""
    current: list[Any] = [resource]
    for part in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item:
                value = item[part]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current


def old_put(target: dict[str, Any], path: str, value: Any) -> None:
    """STU3 engine put_path: dicts created on the way, a list already there extended."""
    *parents, leaf = path.split(".")
    node = target
    for part in parents:
        node = node.setdefault(part, {})
    if isinstance(node.get(leaf), list) and isinstance(value, list):
        node[leaf].extend(value)
    else:
        node[leaf] = value


def old_set(record: dict[str, Any], path: str, value: Any) -> None:
    """PAS engine set_pas: dicts created on the way, the leaf overwritten."""
    parts = path.split(".")
    node = record
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


# --- properties -----------------------------------------------------------------------------


@given(SEGMENT_LISTS)
def test_a_path_prints_back_to_itself(segments: list[Segment]) -> None:
    assert list(parse_path(text(segments))) == segments


@given(planted())
def test_reading_never_raises_and_the_two_readers_agree(case: tuple[Any, list[list[Segment]]]) -> None:
    tree, (segments,) = case
    path = text(segments)
    one = get_path(tree, path)
    every = values_at(tree, path)
    if one is not None:
        assert one in every or (isinstance(one, list) and all(item in every for item in one))


@given(planted(paths=2))
def test_a_union_is_its_branches_in_turn(case: tuple[Any, list[list[Segment]]]) -> None:
    tree, (first, second) = case
    left, right = text(first), text(second)
    assert values_at(tree, f"{left}|{right}") == values_at(tree, left) + values_at(tree, right)


@given(OBJECTS, SEGMENT_LISTS, TREES)
def test_a_write_is_read_back_or_refused(tree: dict[str, Any], segments: list[Segment], value: Any) -> None:
    # A write through `x[key=v]` into that item's own `key` changes what selects it.
    assume(not any(s.key and n.name == s.key for s, n in zip(segments, segments[1:], strict=False)))
    path = text(segments)
    try:
        set_path(tree, path, value)
    except PathError:
        return
    assert get_path(tree, path) == value


@given(st.lists(st.sampled_from(["a", "b"]).map(Segment), min_size=0, max_size=3), NAMES, TREES, TREES)
def test_extend_appends_to_a_list_already_there(parents: list[Segment], leaf: str, first: Any, second: Any) -> None:
    path = text([*parents, Segment(leaf)])
    target: dict[str, Any] = {}
    set_path(target, path, [first])
    set_path(target, path, [second], extend=True)
    assert get_path(target, path) == [first, second]


@given(st.one_of(OBJECTS, TREES), PLAIN_PATHS)
def test_plain_paths_read_as_the_replaced_walkers_did(tree: Any, path: str) -> None:
    assert get_path(tree, path) == old_get(tree, path)
    assert values_at(tree, path) == old_values_at(tree, path)


@given(OBJECTS, PLAIN_PATHS, TREES, st.booleans())
def test_plain_paths_write_as_the_replaced_walkers_did(
    tree: dict[str, Any], path: str, value: Any, extend: bool
) -> None:
    expected = copy.deepcopy(tree)
    try:
        (old_put if extend else old_set)(expected, path, copy.deepcopy(value))
    except (AttributeError, TypeError):
        with pytest.raises(PathError):
            set_path(tree, path, value, extend=extend)
        return
    set_path(tree, path, value, extend=extend)
    assert tree == expected
