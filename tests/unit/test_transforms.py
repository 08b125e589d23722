"""The named transforms: examples, refusals, and backward(forward(x)) == x on canonical values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.transforms import TRANSFORMS, TransformError
from tests.support.pas_records import DMY, EMAIL, PHONE, POSTCODE, YMD, nhs_numbers, words

CANONICAL = {
    "date_dmy": DMY,
    "date_ymd": YMD,
    "names": words(4, 70),
    "postcode": POSTCODE,
    "nhs_number": nhs_numbers(),
    "phone": PHONE,
    "email": EMAIL,
}


def test_every_transform_has_a_canonical_strategy() -> None:
    assert set(CANONICAL) == set(TRANSFORMS)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_backward_inverts_forward(name: str) -> None:
    transform = TRANSFORMS[name]

    @settings(max_examples=200, deadline=None)
    @given(CANONICAL[name])
    def check(value: str) -> None:
        assert transform.backward(transform.forward(value)) == value

    check()


@pytest.mark.parametrize(
    "name,given_value,expected",
    [
        ("date_dmy", "22/10/2010", "2010-10-22"),
        ("date_dmy", "29/02/2024", "2024-02-29"),
        ("date_ymd", "20101022", "2010-10-22"),
        ("date_ymd", "201010221230", "2010-10-22"),
        ("names", "Jane  Anne", ["Jane", "Anne"]),
        ("postcode", "ls16ae", "LS1 6AE"),
        ("postcode", " sw1a 1aa ", "SW1A 1AA"),
        ("nhs_number", "900 000 0009", "9000000009"),
        ("nhs_number", "900-000-0009", "9000000009"),
        ("phone", "+44 (0)1632 960587", "01632960587"),
        ("phone", "0044 1632 960587", "01632960587"),
        ("phone", "07700-900123", "07700900123"),
    ],
)
def test_forward_normalises(name: str, given_value: str, expected: object) -> None:
    assert TRANSFORMS[name].forward(given_value) == expected


@pytest.mark.parametrize(
    "name,bad,reason",
    [
        ("date_dmy", "31/02/2010", "real calendar date"),
        ("date_dmy", "2010-10-22", "DD/MM/YYYY"),
        ("date_ymd", "2010102", "YYYYMMDD"),
        ("date_ymd", "20101322", "real calendar date"),
        ("names", "   ", "no name"),
        ("postcode", "LS1", "postcode"),
        ("nhs_number", "9000000000", "Modulus-11"),
        ("nhs_number", "90000000", "Modulus-11"),
        ("phone", "+1 555 0100", "UK phone"),
        ("email", "no-at-sign", "email"),
    ],
)
def test_forward_refuses_with_a_reason(name: str, bad: str, reason: str) -> None:
    with pytest.raises(TransformError, match=reason):
        TRANSFORMS[name].forward(bad)


@given(st.text(max_size=30))
def test_forward_never_raises_anything_but_transform_error(value: str) -> None:
    for transform in TRANSFORMS.values():
        try:
            transform.forward(value)
        except TransformError:
            pass


def test_backward_on_fhir_values() -> None:
    assert TRANSFORMS["date_dmy"].backward("2010-10-22T10:00:00+00:00") == "22/10/2010"
    with pytest.raises(TransformError, match="full FHIR date"):
        TRANSFORMS["date_dmy"].backward("2010-10")
    assert TRANSFORMS["postcode"].backward("BFPO 123") == "BFPO 123"  # not ours to reject: PDS said so
    assert TRANSFORMS["phone"].backward("+1 555 0100") == "+1 555 0100"
    with pytest.raises(TransformError):
        TRANSFORMS["names"].backward("Jane")
    with pytest.raises(TransformError):
        TRANSFORMS["nhs_number"].backward("1234567890")


def test_only_ascii_digits_count() -> None:
    for name, value in (("phone", "0١٢٣٤٥٦٧٨٩"), ("date_dmy", "٢٢/10/2010"), ("date_ymd", "٢٠١٠1022")):
        with pytest.raises(TransformError):
            TRANSFORMS[name].forward(value)
