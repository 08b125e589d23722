"""Hypothesis strategies for canonical records of the reference PAS and HL7 profiles, and
invalid values per field (each strategy yields values the profile must reject)."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import strategies as st

from server.nhs.nhs_number import check_digit, is_valid_nhs_number

WORD = st.from_regex(r"[A-Za-z][A-Za-z'-]{0,11}", fullmatch=True)
TEXT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ,.'-/"


def words(max_words: int, max_len: int) -> st.SearchStrategy[str]:
    return st.lists(WORD, min_size=1, max_size=max_words).map(" ".join).filter(lambda s: len(s) <= max_len)


def free_text(max_len: int) -> st.SearchStrategy[str]:
    """Text with no leading or trailing space (the canonical form)."""
    return st.text(TEXT_ALPHABET, min_size=1, max_size=max_len).map(str.strip).filter(bool)


@st.composite
def nhs_numbers(draw: Any) -> str:
    first = draw(st.from_regex(r"[0-9]{9}", fullmatch=True))
    digit = check_digit(first)
    if digit is None:
        first = first[:8] + ("1" if first[8] != "1" else "2")
        digit = check_digit(first)
    if digit is None:
        return "9000000009"
    return first + str(digit)


@st.composite
def invalid_nhs_numbers(draw: Any) -> str:
    value = draw(
        st.one_of(
            st.from_regex(r"[0-9]{10}", fullmatch=True),
            st.from_regex(r"[0-9]{1,9}", fullmatch=True),
            st.from_regex(r"[A-Z]{3}[0-9]{7}", fullmatch=True),
        )
    )
    return value if not is_valid_nhs_number(value) else value[:9] + str((int(value[9]) + 1) % 10)


DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31))
DMY = DATES.map(lambda d: d.strftime("%d/%m/%Y"))
YMD = DATES.map(lambda d: d.strftime("%Y%m%d"))
POSTCODE = st.builds(
    lambda out, inward: f"{out} {inward}",
    st.from_regex(r"[A-Z]{1,2}[0-9][A-Z0-9]?", fullmatch=True),
    st.from_regex(r"[0-9][A-Z]{2}", fullmatch=True),
)
PHONE = st.from_regex(r"0[1-9][0-9]{8,9}", fullmatch=True)  # 00 is the international prefix
EMAIL = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,5})?@[a-z]{1,10}\.[a-z]{2,3}", fullmatch=True)
STATUS = st.sampled_from([f"0{i}" for i in range(1, 9)])
ETHNICITY = st.sampled_from(list("ABCDEFGHJKLMNPRSZ") + ["99"])
HOSPITAL_NUMBER = st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True)
LOCAL_ID = st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True)
CODE = st.from_regex(r"[1-9][0-9]{5,17}", fullmatch=True)

PATIENT = st.fixed_dictionaries(
    {"hospitalNumber": HOSPITAL_NUMBER, "surname": words(3, 35), "dateOfBirth": DMY, "sex": st.sampled_from("MFUI")},
    optional={
        "nhsNumber": nhs_numbers(),
        "nhsNumberStatus": STATUS,
        "title": st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True),
        "forenames": words(4, 70),
        "address": st.fixed_dictionaries(
            {}, optional={"lines": st.lists(free_text(35), min_size=1, max_size=5), "postcode": POSTCODE}
        ).filter(bool),
        "phone": PHONE,
        "email": EMAIL,
        "gpPracticeCode": st.from_regex(r"[A-Z][0-9]{5}", fullmatch=True),
        "ethnicity": ETHNICITY,
        "dateOfDeath": DMY,
        "confidentiality": st.sampled_from("URV"),
    },
)

ALLERGY = st.fixed_dictionaries(
    {"allergyId": LOCAL_ID, "substanceText": free_text(200), "status": st.sampled_from("AIR")},
    optional={"substanceCode": CODE, "recordedDate": DMY},
).flatmap(
    lambda r: st.one_of(
        st.just(r),
        st.builds(
            lambda reaction, sev: {**r, "reaction": reaction, **sev},
            free_text(200),
            st.fixed_dictionaries({}, optional={"severity": st.sampled_from(["MILD", "MOD", "SEV"])}),
        ),
    )
)

MEDICATION = st.fixed_dictionaries(
    {"prescriptionId": LOCAL_ID, "drugText": free_text(200), "status": st.sampled_from("ASCXD")},
    optional={
        "drugCode": CODE,
        "doseText": free_text(200),
        "route": st.sampled_from(["PO", "IV", "IM", "SC", "TOP", "PR", "INH"]),
        "startDate": DMY,
        "endDate": DMY,
    },
)

REFERRAL = st.fixed_dictionaries(
    {"ubrn": st.from_regex(r"[0-9]{12}", fullmatch=True), "status": st.sampled_from("DAHXC")},
    optional={
        "specialty": st.from_regex(r"[A-Z][A-Z_]{1,39}", fullmatch=True),
        "priority": st.sampled_from(["R", "U", "2WW"]),
        "requestedDate": DMY,
    },
)

RECORDS = {
    "Patient": PATIENT,
    "AllergyIntolerance": ALLERGY,
    "MedicationRequest": MEDICATION,
    "ServiceRequest": REFERRAL,
}

# Values each field must reject (wrong format, not a real date, unknown code, wrong type).
NOT_TEXT = st.one_of(st.integers(), st.booleans(), st.just({"a": 1}))
INVALID = {
    "hospitalNumber": st.one_of(
        st.from_regex(r"[a-z ]{1,5}", fullmatch=True).filter(lambda s: s.strip()),
        st.from_regex(r"[A-Z0-9]{21,25}", fullmatch=True),
        NOT_TEXT,
    ),
    "nhsNumber": invalid_nhs_numbers(),
    "nhsNumberStatus": st.sampled_from(["00", "09", "1", "x"]),
    "title": st.sampled_from(["Dr.", "A very long title", "Mr 2"]),
    "surname": st.one_of(st.sampled_from(["Smith ", " Smith", "Sm1th", "Smith  Jones"]), NOT_TEXT),
    "dateOfBirth": st.one_of(
        st.sampled_from(["31/02/2010", "2010-10-22", "1/1/2000", "00/01/2000", "22/13/2010"]), YMD
    ),
    "sex": st.sampled_from(["X", "m", "male", "0"]),
    "phone": st.sampled_from(["12345", "+1 555 0100", "phone", "0123"]),
    "email": st.sampled_from(["no-at-sign", "a@b", "two@@example.com"]),
    "gpPracticeCode": st.sampled_from(["y12345", "ABC", "Y1234", "123456"]),
    "ethnicity": st.sampled_from(["T", "X", "a", "98"]),
    "dateOfDeath": st.sampled_from(["30/02/2020", "2020-01-01", "yesterday"]),
    "confidentiality": st.sampled_from(["N", "REDACTED", "u"]),
}
INVALID["address.postcode"] = st.sampled_from(["XXXXX", "12345", "LS1", "LS1 6A"])
INVALID["address.lines"] = st.sampled_from([[""], ["x" * 36], ["line"] * 6, "1 High Street", [" padded"]])
