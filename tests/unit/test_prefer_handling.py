"""Prefer: handling=strict is read per RFC 7240: next to other preferences, quoted, any case."""

from __future__ import annotations

import pytest

from server.fhir.handlers import strict_preference


@pytest.mark.parametrize(
    "header, expected",
    [
        ("handling=strict", True),
        ("handling = strict", True),
        ("HANDLING=Strict", True),
        ('handling="strict"', True),
        ("return=minimal, handling=strict", True),
        ("respond-async, handling=strict; foo=bar", True),  # a parameter after the preference
        ("handling=strict; foo=bar, respond-async", True),
        ("handling=lenient", False),
        ("", False),
        ("return=representation; handling=strict", False),  # a parameter of `return`, not a preference
    ],
)
def test_handling_strict_is_found_among_other_preferences(header: str, expected: bool) -> None:
    assert strict_preference(header) is expected
