"""The named transforms a PAS profile may use: a short, tested list. (The STU3 -> R4
rules have their own, one-way and context-aware: mappings/stu3_to_r4/transforms.py.)

Each transform is a pair of pure functions: `forward` turns a PAS value into its FHIR
value and raises TransformError with a reason a clerk can act on; `backward` turns a
FHIR value back into the PAS form. On a canonical PAS value (the form `forward`
accepts and `backward` writes) `backward(forward(x)) == x`: the property tests check
exactly that. When a mapping needs something this list lacks, add one entry here
(with its tests), never code in a mapping file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from server.nhs.nhs_number import is_valid_nhs_number


class TransformError(ValueError):
    """The value cannot be converted; the message is the reason given to the caller."""


@dataclass(frozen=True)
class Transform:
    name: str
    forward: Callable[[Any], Any]
    backward: Callable[[Any], Any]
    doc: str


def _real_date(year: int, month: int, day: int) -> str:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        raise TransformError("not a real calendar date") from None


_FHIR_DAY = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _fhir_day(value: Any) -> tuple[str, str, str]:
    """Year, month, day of a FHIR date or dateTime; partial dates cannot be expressed."""
    match = _FHIR_DAY.match(value) if isinstance(value, str) else None
    if not match:
        raise TransformError("not a full FHIR date (YYYY-MM-DD)")
    return match.group(1), match.group(2), match.group(3)


_DMY = re.compile(r"^([0-9]{2})/([0-9]{2})/([0-9]{4})$")


def dmy_to_fhir(value: str) -> str:
    match = _DMY.match(value)
    if not match:
        raise TransformError("expected a date as DD/MM/YYYY")
    day, month, year = (int(g) for g in match.groups())
    return _real_date(year, month, day)


def fhir_to_dmy(value: Any) -> str:
    year, month, day = _fhir_day(value)
    return f"{day}/{month}/{year}"


_YMD = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{4}([0-9]{2})?)?$")


def ymd_to_fhir(value: str) -> str:
    """HL7 v2 DT/DTM: YYYYMMDD, optionally with HHMM[SS]; the day is kept."""
    match = _YMD.match(value)
    if not match:
        raise TransformError("expected a date as YYYYMMDD")
    year, month, day = (int(g) for g in match.groups()[:3])
    return _real_date(year, month, day)


def fhir_to_ymd(value: Any) -> str:
    return "".join(_fhir_day(value))


def split_names(value: str) -> list[str]:
    """'Jane Anne' -> ['Jane', 'Anne'] (FHIR HumanName.given holds one name per item)."""
    names = value.split()
    if not names:
        raise TransformError("no name given")
    return names


def join_names(value: Any) -> str:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TransformError("expected a list of names")
    return " ".join(value)


# UK postcode: outward code (area letters, district) + inward code (sector digit, unit letters).
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")


def normalise_postcode(value: str) -> str:
    """'ls16ae' -> 'LS1 6AE': upper case, one space before the inward code."""
    compact = re.sub(r"\s+", "", value).upper()
    match = _POSTCODE.match(compact)
    if not match:
        raise TransformError("not a UK postcode")
    return f"{match.group(1)} {match.group(2)}"


def postcode_from_fhir(value: Any) -> str:
    """PDS postcodes are normalised the same way; anything else is passed on as written."""
    if not isinstance(value, str):
        raise TransformError("expected a postcode string")
    try:
        return normalise_postcode(value)
    except TransformError:
        return value


def check_nhs_number(value: str) -> str:
    """Spaces and hyphens as printed on letters are dropped; Modulus-11 must hold."""
    digits = re.sub(r"[\s-]", "", value)
    if not is_valid_nhs_number(digits):
        raise TransformError("not a valid NHS number (10 digits, Modulus-11 check)")
    return digits


def nhs_number_from_fhir(value: Any) -> str:
    if not isinstance(value, str) or not is_valid_nhs_number(value):
        raise TransformError("not a valid NHS number")
    return value


def normalise_phone(value: str) -> str:
    """UK numbers in national form, digits only: '+44 (0)1632 960587' -> '01632960587'."""
    compact = re.sub(r"[\s\-().]", "", value)
    if compact.startswith("+44"):
        compact = "0" + compact[3:].removeprefix("0")
    elif compact.startswith("0044"):
        compact = "0" + compact[4:].removeprefix("0")
    if not re.match(r"^0[0-9]{9,10}$", compact):
        raise TransformError("not a UK phone number (0 followed by 9 or 10 digits, or +44)")
    return compact


def phone_from_fhir(value: Any) -> str:
    if not isinstance(value, str):
        raise TransformError("expected a phone number string")
    try:
        return normalise_phone(value)
    except TransformError:
        return value


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise TransformError("not an email address")
    return value


def email_from_fhir(value: Any) -> str:
    if not isinstance(value, str):
        raise TransformError("expected an email string")
    return value


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform("date_dmy", dmy_to_fhir, fhir_to_dmy, "PAS DD/MM/YYYY <-> FHIR YYYY-MM-DD (real dates only)"),
        Transform("date_ymd", ymd_to_fhir, fhir_to_ymd, "HL7 v2 YYYYMMDD[HHMM[SS]] <-> FHIR YYYY-MM-DD"),
        Transform("names", split_names, join_names, "'Jane Anne' <-> HumanName.given ['Jane', 'Anne']"),
        Transform("postcode", normalise_postcode, postcode_from_fhir, "UK postcode, upper case, one space"),
        Transform("nhs_number", check_nhs_number, nhs_number_from_fhir, "NHS number, 10 digits, Modulus-11"),
        Transform("phone", normalise_phone, phone_from_fhir, "UK phone number, national form, digits only"),
        Transform("email", check_email, email_from_fhir, "email address, checked for shape"),
    )
}
