"""Converted upstream resources are checked as R4 once, where they enter; failures name
element paths only (values may be PHI)."""

from __future__ import annotations

import pytest

from server.nhs.entry_validation import check_r4, expect_resource, model_problems
from server.nhs.errors import UpstreamBadResponse

VALID = {
    "resourceType": "MedicationRequest",
    "id": "a",
    "status": "active",
    "intent": "order",
    "subject": {"reference": "Patient/9000000009"},
    "medicationCodeableConcept": {"text": "x"},
}


def test_valid_resource_passes_unchanged() -> None:
    assert check_r4(VALID, "CPT") is VALID


def test_invalid_resource_names_the_path_not_the_value() -> None:
    bad = {**VALID, "authoredOn": "SECRET-not-a-date"}
    with pytest.raises(UpstreamBadResponse) as info:
        check_r4(bad, "CPT")
    assert "authoredOn" in str(info.value)
    assert "SECRET" not in str(info.value)
    assert info.value.api == "CPT"


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "Patient",
        {"resourceType": "Bundle", "id": "x"},
        {"resourceType": "Patient"},
        {"resourceType": "Patient", "id": ""},
    ],
)
def test_a_read_answered_with_anything_but_one_resource_with_an_id_is_a_bad_response(body: object) -> None:
    with pytest.raises(UpstreamBadResponse) as info:
        expect_resource(body, "Patient", "PDS")
    assert info.value.api == "PDS" and "Patient" in str(info.value)


def test_one_resource_with_an_id_passes_unchanged() -> None:
    body = {"resourceType": "ServiceRequest", "id": "a"}
    assert expect_resource(body, "ServiceRequest", "BaRS") is body


@pytest.mark.parametrize("contained", [[{"resourceType": "NotAType"}], [{"resourceType": None}]])
def test_contained_resources_of_no_known_type_are_a_bad_response(contained: list[object]) -> None:
    # fhir.resources raises KeyError/TypeError (not ValidationError) for these: was a 500.
    with pytest.raises(UpstreamBadResponse) as info:
        check_r4({**VALID, "contained": contained}, "CPT")
    assert "MedicationRequest" in str(info.value)


@pytest.mark.parametrize("resource", [{"resourceType": "NotAType", "id": "a"}, {"id": "a"}])
def test_a_converted_resource_of_no_r4_type_is_a_bad_response(resource: dict[str, object]) -> None:
    # check_r4 and the providers' r4_problems are one check: neither may raise an import error (500).
    with pytest.raises(UpstreamBadResponse) as info:
        check_r4(resource, "CPT")
    assert "resourceType" in str(info.value)


def test_stu3_problems_name_paths_only() -> None:
    from fhir.resources.STU3.allergyintolerance import AllergyIntolerance

    problems = model_problems(
        AllergyIntolerance,
        {
            "resourceType": "AllergyIntolerance",
            "id": "a",
            "patient": {"reference": "Patient/1"},
            "assertedDate": "SECRET-not-a-date",
        },
    )
    assert problems == ["assertedDate"]
