"""Contract: the CPT conversion against NHS's own examples, parsed in place.

eps-tracker/ (Clinical Prescription Tracker, the façade's upstream): every file is
handled: RequestGroup_prescriptionId_* (details) convert to valid R4 MedicationRequests,
RequestGroup_search_* (search) parse to prescription rows, 404_NotFound maps to a 404.
pfp/ (Prescriptions for Patients) is not an upstream of the façade (NHS App only, NHS
login P9), but its MedicationRequests are EPS line items in another wrapping (a
searchset of per-prescription collection Bundles, subject by identifier, coded
medication, no item number). The item-level conversion is shared, so every pfp
MedicationRequest is run through it too; the bundle walking and item ids are CPT's only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from server.fhir.errors import NotFound
from server.nhs.errors import UpstreamRejected, read_nhs_outcome
from server.providers.upstream_errors import to_fhir_error
from server.sources.cpt.ids import parse_medication_request_id
from server.sources.cpt.mapping import (
    DISPENSING_INFORMATION,
    ITEM_NUMBER_SYSTEM,
    ORDER_NUMBER_SYSTEM,
    PrescriptionContext,
    medication_request_from_item,
    medication_requests,
    prescription_refs,
)
from tests.support.shared import example_files


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == rtype]


EPS_FILES = example_files("eps-tracker/*.json")
KINDS = {"RequestGroup_prescriptionId_": "details", "RequestGroup_search_": "search", "404_": "error"}


def _kind(path: Path) -> str:
    return next(kind for prefix, kind in KINDS.items() if path.name.startswith(prefix))


@pytest.mark.parametrize("path", EPS_FILES, ids=lambda p: p.name)
def test_every_eps_tracker_file_is_a_known_kind(path: Path) -> None:
    assert _kind(path) in ("details", "search", "error")  # StopIteration for a new, unhandled file


@pytest.mark.parametrize("path", [p for p in EPS_FILES if _kind(p) == "details"], ids=lambda p: p.name)
def test_details_convert_to_valid_r4_keeping_every_nhs_identifier(path: Path) -> None:
    bundle = _load(path)
    upstream_items = _resources(bundle, "MedicationRequest")
    group = _resources(bundle, "RequestGroup")[0]
    prescription_id = group["identifier"][0]["value"]
    out = medication_requests(bundle)
    assert len(out) == len(upstream_items) >= 1
    for converted, upstream in zip(out, upstream_items):
        MedicationRequest.model_validate(converted)
        assert converted["identifier"] == upstream["identifier"]
        assert converted["groupIdentifier"] == {"system": ORDER_NUMBER_SYSTEM, "value": prescription_id}
        assert converted["status"] == upstream["status"]
        assert converted["authoredOn"] == group["authoredOn"]
        assert converted["subject"]["reference"].startswith("Patient/")
        up_ext = next(e for e in upstream["extension"] if e["url"] == DISPENSING_INFORMATION)
        assert next(e for e in converted["extension"] if e["url"] == DISPENSING_INFORMATION) == up_ext
        key = parse_medication_request_id(converted["id"])
        assert key is not None and key.prescription_id == prescription_id


def test_partially_dispensed_keeps_each_items_dispensing_status() -> None:
    [path] = example_files("eps-tracker/RequestGroup_prescriptionId_200_AcuteWithMultipleItems_PartiallyDispensed.json")
    out = medication_requests(_load(path))
    codes = [
        next(e for e in m["extension"] if e["url"] == DISPENSING_INFORMATION)["extension"][0]["valueCoding"]["code"]
        for m in out
    ]
    assert codes == ["0001", "0001", "0004", "0004"]
    assert [m["status"] for m in out] == ["completed", "completed", "active", "active"]
    assert {m["subject"]["identifier"]["value"] for m in out} == {"5839945242"}
    # CPT's performer.identifier list is repaired to R4's single Identifier.
    assert out[0]["performer"] == {
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "FA565"}
    }
    assert out[0]["requester"]["identifier"]["value"] == "A83008"


@pytest.mark.parametrize("path", [p for p in EPS_FILES if _kind(p) == "search"], ids=lambda p: p.name)
def test_search_rows_name_prescription_issue_and_patient(path: Path) -> None:
    bundle = _load(path)
    refs = prescription_refs(bundle)
    groups = _resources(bundle, "RequestGroup")
    assert len(refs) == len(groups) == bundle["total"]
    patient_nhs = _resources(bundle, "Patient")[0]["identifier"][0]["value"]
    for ref, group in zip(refs, groups):
        assert ref.prescription_id == group["identifier"][0]["value"]
        assert ref.nhs_number == patient_nhs
        assert ref.authored_on == group["authoredOn"]
    if "Repeat" in path.name:
        assert refs[0].issue == 1
    else:
        assert refs[0].issue is None


def test_not_found_example_becomes_a_fhir_404() -> None:
    [path] = example_files("eps-tracker/404_NotFound.json")
    outcome = read_nhs_outcome(_load(path))
    assert outcome.code == "NOT_FOUND"
    assert outcome.system == "https://fhir.nhs.uk/CodeSystem/http-error-codes"
    err = to_fhir_error(
        UpstreamRejected(
            "CPT",
            "HTTP 404",
            status=404,
            nhs_code=outcome.code,
            nhs_display=outcome.display,
            nhs_system=outcome.system,
            diagnostics=outcome.diagnostics,
        )
    )
    assert isinstance(err, NotFound)
    coding = err.outcome()["issue"][0]["details"]["coding"][0]
    # CPT's code reaches the client under CPT's code system, not Spine's.
    assert (coding["system"], coding["code"]) == ("https://fhir.nhs.uk/CodeSystem/http-error-codes", "NOT_FOUND")


def _pfp_items(bundle: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(inner collection bundle, MedicationRequest) pairs of a pfp GetMyPrescriptions searchset."""
    pairs = []
    for entry in bundle.get("entry", []):
        inner = entry["resource"]
        if inner["resourceType"] == "Bundle":
            pairs += [(inner, r) for r in _resources(inner, "MedicationRequest")]
    return pairs


@pytest.mark.parametrize("path", example_files("pfp/*.json"), ids=lambda p: p.name)
def test_pfp_medication_requests_go_through_the_shared_item_conversion(path: Path) -> None:
    bundle = _load(path)
    pairs = _pfp_items(bundle)
    assert len(pairs) == (4 if "success" in path.name else 0)
    for n, (inner, item) in enumerate(pairs):
        index = {e["fullUrl"]: e["resource"] for e in inner["entry"]}
        nhs = item["subject"]["identifier"]["value"]
        rx = item["groupIdentifier"]["value"]
        ctx = PrescriptionContext(prescription_id=rx, issue=None, nhs_number=nhs, group={})
        converted = medication_request_from_item(item, ctx, index, f"pfp-{n}")
        MedicationRequest.model_validate(converted)
        assert converted["groupIdentifier"] == {"system": ORDER_NUMBER_SYSTEM, "value": rx}
        assert converted["subject"]["reference"] == f"Patient/{nhs}"
        assert converted["medicationCodeableConcept"] == item["medicationCodeableConcept"]
        # dispenseRequest.performer pointed at an Organization inside the collection: now by ODS code.
        assert (
            converted["dispenseRequest"]["performer"]["identifier"]["system"]
            == "https://fhir.nhs.uk/Id/ods-organization-code"
        )
        assert ITEM_NUMBER_SYSTEM not in json.dumps(converted)  # pfp has none; nothing invented
