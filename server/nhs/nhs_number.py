"""NHS number Modulus-11 check: an invalid number never reaches an NHS API."""

from __future__ import annotations

from server.nhs.identifiers import NHS_NUMBER_SYSTEM as NHS_NUMBER_SYSTEM  # where callers look for it


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None when no valid number starts with them."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(first_nine))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_valid_nhs_number(value: str) -> bool:
    """True for ten ASCII digits whose last is the Modulus-11 check of the first nine."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    return check_digit(value[:9]) == int(value[9])
