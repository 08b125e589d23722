"""Tracing decisions: only one confident candidate is ever accepted."""

from __future__ import annotations

from server.pas.tracing import TraceQuery, judge_exact, judge_fuzzy, no_fuzzy_possible
from server.sources.pds.client import PatientMatch

QUERY = TraceQuery(family="Smith", birth_date="2010-10-22", given="Jane", gender="female", postcode="LS1 6AE")


def match(
    nhs: str, score: float | None, birth: str = "2010-10-22", gender: str = "female", security: str = "U"
) -> PatientMatch:
    return PatientMatch(
        {
            "resourceType": "Patient",
            "id": nhs,
            "birthDate": birth,
            "gender": gender,
            "meta": {"security": [{"code": security}]},
        },
        score,
    )


def test_query_from_patient_and_pds_parameters() -> None:
    q = TraceQuery.from_patient(
        {
            "name": [{"family": "Smith", "given": ["Jane", "Anne"]}],
            "birthDate": "2010-10-22",
            "gender": "female",
            "address": [{"postalCode": "LS1 6AE"}],
        }
    )
    assert q == QUERY
    assert q.exact_params() == [
        ("_exact-match", "true"),
        ("family", "Smith"),
        ("given", "Jane"),
        ("gender", "female"),
        ("birthdate", "eq2010-10-22"),
        ("address-postalcode", "LS1 6AE"),
    ]
    assert q.fuzzy_params()[0] == ("_fuzzy-match", "true")
    assert TraceQuery.from_patient({"name": [{"family": "Smith"}]}) is None


def test_fuzzy_needs_pds_minimum() -> None:
    assert TraceQuery("Smith", "2010-10-22").fuzzy_params() is None
    assert TraceQuery("Smith", "2010-10-22", gender="female", postcode="LS1 6AE").fuzzy_params() is not None


def test_one_exact_match_is_verified() -> None:
    outcome = judge_exact(QUERY, [match("9000000009", 1.0, security="R")])
    assert (outcome.status, outcome.reason, outcome.nhs_number, outcome.security) == (
        "01",
        "exact-match",
        "9000000009",
        "R",
    )


def test_exact_stage_outcomes() -> None:
    assert judge_exact(QUERY, []) is None  # go fuzzy
    assert judge_exact(QUERY, [match("9000000009", 0.9)]) is None
    two = judge_exact(QUERY, [match("9000000009", 1.0), match("9000000017", 1.0)])
    assert (two.status, two.reason, two.nhs_number, two.candidates) == ("04", "multiple-matches", None, 2)
    too_many = judge_exact(QUERY, None)
    assert (too_many.status, too_many.reason) == ("04", "too-many-matches")
    differs = judge_exact(QUERY, [match("9000000009", 1.0, birth="2010-10-23")])
    assert (differs.status, differs.reason) == ("04", "details-differ")


def test_fuzzy_stage_thresholds() -> None:
    assert judge_fuzzy(QUERY, [match("9000000068", 0.96)]).nhs_number == "9000000068"
    assert judge_fuzzy(QUERY, [match("9000000068", 0.95)]).status == "01"  # the threshold is inclusive
    low = judge_fuzzy(QUERY, [match("9000000068", 0.94)])
    assert (low.status, low.reason, low.nhs_number) == ("04", "low-score", None)
    assert judge_fuzzy(QUERY, [match("9000000068", None)]).reason == "low-score"
    assert judge_fuzzy(QUERY, [match("9000000068", 0.9)], min_score=0.9).status == "01"
    assert judge_fuzzy(QUERY, [match("a", 1.0), match("b", 0.99)]).reason == "multiple-matches"
    assert judge_fuzzy(QUERY, []).reason == "no-match"
    assert judge_fuzzy(QUERY, None).reason == "too-many-matches"
    # Fuzzy PDS search tolerates transposed dates and other genders; a trace does not.
    assert judge_fuzzy(QUERY, [match("x", 0.99, birth="2010-22-10")]).reason == "details-differ"
    assert judge_fuzzy(QUERY, [match("x", 0.99, gender="male")]).reason == "details-differ"
    assert no_fuzzy_possible().status == "04"


def test_header_has_no_patient_data() -> None:
    header = judge_exact(QUERY, [match("9000000009", 1.0)]).header()
    assert header == "status=01; result=exact-match; stage=exact; candidates=1; score=1"
    assert "9000000009" not in header
