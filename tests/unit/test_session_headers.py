"""NHS session headers come from the caller; a missing or malformed one is a 400 naming it."""

from __future__ import annotations

import pytest

from server.nhs.session_headers import MissingSessionHeader, session_headers
from server.providers.failures import as_fhir_error

GOOD = {
    "nhsd-session-urid": "555254240100",
    "nhsd-organization-uuid": "A83008",
    "nhsd-session-jobrole": "S0030:G0100:R0570",
}


def test_all_three_are_forwarded() -> None:
    assert session_headers(GOOD) == GOOD


def test_header_names_are_case_insensitive() -> None:
    assert session_headers({k.upper(): v for k, v in GOOD.items()}) == GOOD


@pytest.mark.parametrize("name", sorted(GOOD))
def test_missing_header_is_named(name: str) -> None:
    headers = {k: v for k, v in GOOD.items() if k != name}
    with pytest.raises(MissingSessionHeader) as info:
        session_headers(headers)
    seen = as_fhir_error(info.value)  # as the caller sees it
    assert seen.status == 400
    assert f"'{name}'" in seen.diagnostics
    assert seen.outcome()["issue"][0]["code"] == "required"


@pytest.mark.parametrize(
    "name, value",
    [
        ("nhsd-session-urid", "abc"),  # the spec's pattern is digits
        ("nhsd-session-jobrole", "a b"),  # no spaces or control characters
        ("nhsd-organization-uuid", "x" * 201),  # bounded
        ("nhsd-organization-uuid", "   "),  # blank is missing
    ],
)
def test_malformed_value_is_a_400(name: str, value: str) -> None:
    with pytest.raises(MissingSessionHeader, match=name):
        session_headers({**GOOD, name: value})
