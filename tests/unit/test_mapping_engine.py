"""The engine: both directions from one spec, every problem collected, nothing half-written."""

from __future__ import annotations

import pytest

from mappings.engine import MappingFailed, Problem, to_fhir, to_pas, unknown_fields
from mappings.spec import load_profile, parse_profile

PAS = load_profile("pas/reference_pas")
PATIENT = PAS.record("Patient")


def test_every_problem_is_reported_at_once() -> None:
    record = {
        "hospitalNumber": "h 1",
        "dateOfBirth": "31/02/2010",
        "sex": "X",
        "shoeSize": 9,
        "address": "1 High St",
        "phone": 7700900123,
    }
    with pytest.raises(MappingFailed) as failed:
        to_fhir(PATIENT, record)
    assert {(p.path, p.reason.split(" (")[0]) for p in failed.value.problems} == {
        ("shoeSize", "not a field of this PAS profile"),
        ("address", "expected an object"),
        ("hospitalNumber", "does not match the expected format [A-Z0-9]{1,20}"),
        ("surname", "required"),
        ("dateOfBirth", "not a real calendar date"),
        ("sex", "not one of the codes M, F, U, I"),
        ("phone", "expected text"),
    }
    bad = next(p for p in failed.value.problems if p.path == "dateOfBirth")
    assert bad.value == "31/02/2010"


def test_empty_strings_and_lists_mean_absent() -> None:
    resource = to_fhir(
        PATIENT,
        {
            "hospitalNumber": "H1",
            "surname": "Smith",
            "dateOfBirth": "01/01/2000",
            "sex": "M",
            "phone": "",
            "address": {"lines": []},
        },
    )
    assert "telecom" not in resource and "address" not in resource


def test_requires_names_the_dependent_field() -> None:
    allergy = PAS.record("AllergyIntolerance")
    with pytest.raises(MappingFailed) as failed:
        to_fhir(allergy, {"allergyId": "A1", "substanceText": "Peanut", "status": "A", "severity": "SEV"})
    assert failed.value.problems == [Problem("severity", "SEV", "needs reaction as well")]


def test_list_items_are_checked_one_by_one() -> None:
    with pytest.raises(MappingFailed) as failed:
        to_fhir(
            PATIENT,
            {
                "hospitalNumber": "H1",
                "surname": "Smith",
                "dateOfBirth": "01/01/2000",
                "sex": "M",
                "address": {"lines": ["ok", " bad"]},
            },
        )
    assert failed.value.problems[0].path == "address.lines"
    assert failed.value.problems[0].reason.startswith("item 2:")


def test_fixed_values_are_written_with_their_field() -> None:
    med = to_fhir(
        PAS.record("MedicationRequest"),
        {"prescriptionId": "M1", "drugText": "Amoxicillin", "status": "A", "route": "PO"},
    )
    assert med["intent"] == "order"
    assert med["dosageInstruction"][0]["route"]["coding"] == [{"system": "http://snomed.info/sct", "code": "26643006"}]


def test_backward_reports_values_without_a_pas_form() -> None:
    record, problems = to_pas(
        PATIENT,
        {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "2010-10",
            "identifier": [{"system": "https://pas.example.org/Id/hospital-number", "value": "H1"}],
        },
    )
    assert record == {"hospitalNumber": "H1", "sex": "M"}
    assert problems == [Problem("birthDate", "2010-10", "not a full FHIR date (YYYY-MM-DD)")]
    _, problems = to_pas(PAS.record("AllergyIntolerance"), {"clinicalStatus": {"coding": [{"code": "remission"}]}})
    assert problems[0].reason == "no PAS code for 'remission'"


def test_many_to_one_code_tables_go_back_to_the_first_code() -> None:
    hl7 = load_profile("hl7/adt_pid").record("Patient")
    record, _ = to_pas(hl7, {"gender": "other"})
    assert record == {"PID": {"8": {"1": "O"}}}


def test_a_path_gap_is_a_problem_not_a_crash() -> None:
    profile = parse_profile(
        {
            "profile": "gap",
            "records": {"Patient": {"resource": "Patient", "fields": [{"pas": "line2", "fhir": "address[0].line[1]"}]}},
        }
    )
    with pytest.raises(MappingFailed) as failed:
        to_fhir(profile.record("Patient"), {"line2": "Leeds"})
    assert failed.value.problems[0].path == "line2"


def test_non_object_record() -> None:
    with pytest.raises(MappingFailed) as failed:
        to_fhir(PATIENT, ["not", "an", "object"])
    assert failed.value.problems[0].reason == "expected a JSON object"


def test_unknown_fields_walks_nested_objects() -> None:
    problems = unknown_fields(PATIENT, {"address": {"lines": ["x"], "town": "Leeds"}, "hospitalNumber": "H1"})
    assert problems == [Problem("address.town", "Leeds", "not a field of this PAS profile")]
