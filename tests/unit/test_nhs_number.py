"""NHS number Modulus-11: properties that follow from 11 being prime and the weights 10..1."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from server.nhs.nhs_number import check_digit, is_valid_nhs_number

nine_digits = st.text(alphabet="0123456789", min_size=9, max_size=9)


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    first = draw(nine_digits)
    check = check_digit(first)
    assume(check is not None)
    return first + str(check)


@pytest.mark.parametrize(
    "number",
    [
        "9000000009",
        "9000000017",
        "9000000025",
        "9000000033",
        "9000000041",
        "9000000068",
        "9000000076",
        "9000000084",
        "9000000092",
        "9111231130",
        "9434765919",
    ],
)
def test_known_valid_numbers(number: str) -> None:
    assert is_valid_nhs_number(number)


@pytest.mark.parametrize(
    "number", ["9000000000", "900000000", "90000000090", "900000000a", " 900000009", "", "٩٠٠٠٠٠٠٠٠٩", "9000000001"]
)
def test_known_invalid_numbers(number: str) -> None:
    assert not is_valid_nhs_number(number)


def test_check_digit_ten_means_no_valid_number() -> None:
    prefix = next(p for p in (f"{i:09d}" for i in range(1000)) if check_digit(p) is None)
    assert all(not is_valid_nhs_number(prefix + str(d)) for d in range(10))


@given(nine_digits)
def test_exactly_one_check_digit_or_none(first: str) -> None:
    valid = [d for d in range(10) if is_valid_nhs_number(first + str(d))]
    check = check_digit(first)
    assert valid == ([] if check is None else [check])


@given(valid_numbers(), st.integers(0, 9), st.integers(1, 9))
def test_any_single_digit_change_is_detected(number: str, position: int, delta: int) -> None:
    digits = list(number)
    digits[position] = str((int(digits[position]) + delta) % 10)
    assert not is_valid_nhs_number("".join(digits))


@given(valid_numbers(), st.integers(0, 9), st.integers(0, 9))
def test_any_transposition_of_two_different_digits_is_detected(number: str, i: int, j: int) -> None:
    assume(number[i] != number[j])
    digits = list(number)
    digits[i], digits[j] = digits[j], digits[i]
    assert not is_valid_nhs_number("".join(digits))
