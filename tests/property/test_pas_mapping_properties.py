"""Property tests of the declared mappings (500 examples each, as `make test` runs them):
canonical records round-trip PAS -> FHIR -> PAS unchanged, every FHIR output validates
as R4, and invalid records are rejected naming exactly the fields that are wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.engine import MappingFailed, to_fhir, to_pas
from mappings.paths import set_path
from mappings.spec import load_profile
from server.pas.records import PASMappings, clinical_resource, patient_resource
from tests.support.fhir_validation import validate_r4
from tests.support.pas_records import INVALID, PATIENT, RECORDS

PROFILE = load_profile("pas/reference_pas")
MAPPINGS = PASMappings(PROFILE)
EXAMPLES = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _as_fhir(resource_type: str, record: dict[str, Any]) -> dict[str, Any]:
    """The resource exactly as the façade serves it (id, meta.source, subject added)."""
    if resource_type == "Patient":
        return patient_resource(MAPPINGS, record)
    if resource_type in ("AllergyIntolerance", "MedicationRequest"):
        return clinical_resource(MAPPINGS, resource_type, "H1", record)
    resource = to_fhir(PROFILE.record(resource_type), record)
    return {**resource, "id": "ref-1", "subject": {"reference": "Patient/pas-H1"}}


@pytest.mark.parametrize("resource_type", sorted(RECORDS))
def test_round_trip_and_r4_validity(resource_type: str) -> None:
    mapping = PROFILE.record(resource_type)

    @EXAMPLES
    @given(RECORDS[resource_type])
    def check(record: dict[str, Any]) -> None:
        resource = to_fhir(mapping, record)
        back, problems = to_pas(mapping, resource)
        assert problems == []
        assert back == record
        validate_r4(_as_fhir(resource_type, record))

    check()


@EXAMPLES
@given(PATIENT, st.data())
def test_invalid_fields_are_all_named(record: dict[str, Any], data: st.DataObject) -> None:
    fields = data.draw(st.lists(st.sampled_from(sorted(INVALID)), min_size=1, max_size=4, unique=True))
    bad = copy.deepcopy(record)
    for field in fields:
        if field.startswith("address.") and not isinstance(bad.get("address"), dict):
            bad["address"] = {}
        set_path(bad, field, data.draw(INVALID[field], label=field))
    with pytest.raises(MappingFailed) as failed:
        to_fhir(PROFILE.record("Patient"), bad)
    assert {p.path for p in failed.value.problems} == set(fields)


@EXAMPLES
@given(PATIENT, st.sampled_from(["hospitalNumber", "surname", "dateOfBirth", "sex"]))
def test_missing_required_fields_are_named(record: dict[str, Any], field: str) -> None:
    bad = {k: v for k, v in record.items() if k != field}
    with pytest.raises(MappingFailed) as failed:
        to_fhir(PROFILE.record("Patient"), bad)
    assert [(p.path, p.reason) for p in failed.value.problems] == [(field, "required")]
