"""Ids as upstream path segments (issue 8): quoted, and never a dot segment."""

from __future__ import annotations

import pytest

from server.nhs.errors import UnsendableId
from server.nhs.path_segments import path_segment
from server.providers.failures import as_fhir_error


@pytest.mark.parametrize(
    "value, segment",
    [
        ("abc-123", "abc-123"),
        ("r.5c0e", "r.5c0e"),
        ("a/b", "a%2Fb"),
        ("a?b#c", "a%3Fb%23c"),
        ("%2e%2e", "%252e%252e"),
        ("...", "..."),
    ],
)
def test_ids_become_one_quoted_segment(value: str, segment: str) -> None:
    assert path_segment(value) == segment


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_dot_segments_are_refused(value: str) -> None:
    with pytest.raises(UnsendableId) as info:
        path_segment(value)
    assert as_fhir_error(info.value).status == 404
