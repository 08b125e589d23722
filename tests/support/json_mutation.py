"""Hypothesis strategies for upstream answers of the right outline but wrong value types:
one or two nodes of a real NHS example replaced by a JSON value of another type."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

# Values an upstream could plausibly put anywhere: every JSON type, plus shapes that
# look right but are not (an unknown resource, an impossible date, a list of null).
replacement_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "2020-13-45", "Patient/", "#"]),
    st.just([]),
    st.just({}),
    st.just([None]),
    st.just([[]]),
    st.just([{}]),
    st.just({"resourceType": "Nope"}),
    st.just({"reference": 5}),
)


def node_paths(node: Any, path: Path = ()) -> Iterator[Path]:
    """Every path into a JSON document except the root."""
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from node_paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from node_paths(value, path + (index,))


def replaced(document: Any, path: Path, value: Any) -> Any:
    """A deep copy of `document` with the node at `path` replaced by `value`."""
    out = copy.deepcopy(document)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = copy.deepcopy(value)
    return out


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """`document` with one or two of its nodes given values of (usually) another type.
    A second mutation may target a path the first removed: it is then skipped."""
    # Depth first, then a path at that depth: shallow nodes (Bundle.entry, entry.resource)
    # are few but are where connectors break, so each depth gets an equal share.
    by_depth: dict[int, list[Path]] = {}
    for path in node_paths(document):
        by_depth.setdefault(len(path), []).append(path)
    depths = sorted(by_depth)
    out = document
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(by_depth[draw(st.sampled_from(depths))]))
        try:
            out = replaced(out, path, draw(replacement_values))
        except (KeyError, IndexError, TypeError):
            continue
    return out
