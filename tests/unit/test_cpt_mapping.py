"""RequestGroup (CPT) -> R4 MedicationRequest: properties over generated bundles, and the
specific repairs the conversion makes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.sources.cpt.ids import parse_medication_request_id
from server.sources.cpt.mapping import (
    DISPENSING_INFORMATION,
    ITEM_NUMBER_SYSTEM,
    NHS_NUMBER_SYSTEM,
    ORDER_NUMBER_SYSTEM,
    REPEAT_INFORMATION,
    CPTShapeError,
    medication_requests,
    prescription_refs,
)

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SD = "https://fhir.nhs.uk/StructureDefinition/"
MR_STATUSES = ["active", "completed", "cancelled", "stopped", "on-hold", "unknown"]
DISPENSE = [
    ("0001", "Item fully dispensed"),
    ("0002", "Item not dispensed"),
    ("0003", "Item dispensed - partial"),
    ("0004", "Item not dispensed - owing"),
    ("0005", "Item cancelled"),
    ("0007", "Item to be dispensed"),
]


def nhs_numbers() -> st.SearchStrategy[str]:
    def with_check(nine: str) -> str | None:
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(nine)) % 11
        check = 0 if check == 11 else check
        return None if check == 10 else nine + str(check)

    return st.from_regex(r"\A[1-9][0-9]{8}\Z").map(with_check).filter(lambda n: n is not None)  # type: ignore


@st.composite
def detail_bundles(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A CPT prescription-details bundle in the shape of the eps-tracker clinicalView examples."""
    rx = draw(st.from_regex(r"\A[0-9A-F]{6}-[0-9A-Z]{6}-[0-9A-F]{5}[0-9A-Z+]\Z"))
    nhs = draw(nhs_numbers())
    issue = draw(st.one_of(st.none(), st.integers(1, 12)))
    n_items = draw(st.integers(1, 4))
    item_numbers = draw(
        st.lists(st.uuids().map(lambda u: str(u).upper()), min_size=n_items, max_size=n_items, unique=True)
    )
    intent = draw(st.sampled_from(["order", "instance-order", "reflex-order"]))
    authored = draw(
        st.one_of(
            st.none(),
            st.datetimes(
                min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(timezone.utc)
            ).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.000Z")),
        )
    )
    listed_as_list = draw(st.booleans())  # CPT's Reference.identifier-as-a-list quirk
    patient_urn, role_urn = "urn:uuid:p-1", "urn:uuid:r-1"
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient_urn,
            "search": {"mode": "include"},
            "resource": {
                "resourceType": "Patient",
                "id": "p-1",
                "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
            },
        },
        {
            "fullUrl": role_urn,
            "search": {"mode": "include"},
            "resource": {
                "resourceType": "PractitionerRole",
                "id": "r-1",
                "organization": {"identifier": {"system": ODS, "value": "A83008"}},
            },
        },
    ]
    expected: dict[str, Any] = {"rx": rx, "nhs": nhs, "issue": issue, "items": {}}
    for n, number in enumerate(item_numbers):
        status = draw(st.sampled_from(MR_STATUSES))
        code, display = draw(st.sampled_from(DISPENSE))
        ods_ident = {"system": ODS, "value": draw(st.from_regex(r"\A[A-Z0-9]{3,6}\Z"))}
        item: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": f"i-{n}",
            "identifier": [{"system": ITEM_NUMBER_SYSTEM, "value": number}],
            "subject": {"reference": patient_urn},
            "status": status,
            "intent": intent,
            "requester": {"reference": role_urn},
            "performer": {"identifier": [ods_ident] if listed_as_list else ods_ident},
            "groupIdentifier": {"system": ORDER_NUMBER_SYSTEM, "value": rx},
            "medicationCodeableConcept": {"text": draw(st.text(min_size=1, max_size=40).filter(str.strip))},
            "dispenseRequest": {
                "quantity": {"value": draw(st.integers(0, 500)), "unit": "tablet"},
                "performer": {"identifier": [ods_ident] if listed_as_list else ods_ident},
            },
            "dosageInstruction": [{"text": "1 daily"}],
            "substitution": {"allowedBoolean": False},
            "extension": [
                {
                    "url": DISPENSING_INFORMATION,
                    "extension": [
                        {
                            "url": "dispenseStatus",
                            "valueCoding": {
                                "system": "https://fhir.nhs.uk/CodeSystem/medicationdispense-type",
                                "code": code,
                                "display": display,
                            },
                        }
                    ],
                }
            ],
        }
        expected["items"][number] = {"status": status, "dispense": code}
        entries.append({"fullUrl": f"urn:uuid:i-{n}", "search": {"mode": "include"}, "resource": item})
    group: dict[str, Any] = {
        "resourceType": "RequestGroup",
        "id": "g-1",
        "identifier": [{"system": ORDER_NUMBER_SYSTEM, "value": rx}],
        "subject": {"reference": patient_urn},
        "status": "active",
        "intent": intent,
        "extension": [
            {
                "url": SD + "Extension-EPS-PrescriptionStatusHistory",
                "extension": [
                    {
                        "url": "status",
                        "valueCoding": {
                            "system": "https://fhir.nhs.uk/CodeSystem/EPS-task-business-status",
                            "code": "0003",
                            "display": "With Dispenser - Active",
                        },
                    }
                ],
            }
        ],
        "action": [
            {
                "title": "Prescription Line Items(Medications)",
                "action": [{"resource": {"reference": f"urn:uuid:i-{n}"}} for n in range(n_items)],
            }
        ],
    }
    if authored:
        group["authoredOn"] = authored
    if issue is not None:
        group["extension"].append(
            {
                "url": REPEAT_INFORMATION,
                "extension": [
                    {"url": "numberOfRepeatsIssued", "valueInteger": issue},
                    {"url": "numberOfRepeatsAllowed", "valueInteger": 12},
                ],
            }
        )
    entries.append({"fullUrl": "urn:uuid:g-1", "search": {"mode": "match"}, "resource": group})
    expected["authored"] = authored
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}, expected


@settings(max_examples=60, deadline=None)
@given(detail_bundles())
def test_every_item_becomes_a_valid_r4_medication_request_keeping_nhs_identifiers(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    bundle, expected = case
    out = medication_requests(bundle)
    assert len(out) == len(expected["items"])
    assert len({m["id"] for m in out}) == len(out)
    for mr in out:
        MedicationRequest.model_validate(mr)
        number = next(i["value"] for i in mr["identifier"] if i["system"] == ITEM_NUMBER_SYSTEM)
        assert number in expected["items"]
        assert mr["groupIdentifier"] == {"system": ORDER_NUMBER_SYSTEM, "value": expected["rx"]}
        assert mr["subject"] == {
            "reference": f"Patient/{expected['nhs']}",
            "identifier": {"system": NHS_NUMBER_SYSTEM, "value": expected["nhs"]},
        }
        assert mr["status"] == expected["items"][number]["status"]
        dispensing = next(e for e in mr["extension"] if e["url"] == DISPENSING_INFORMATION)
        assert dispensing["extension"][0]["valueCoding"]["code"] == expected["items"][number]["dispense"]
        assert parse_medication_request_id(mr["id"]).prescription_id == expected["rx"]  # type: ignore[union-attr]
        assert parse_medication_request_id(mr["id"]).issue == expected["issue"]  # type: ignore[union-attr]
        assert mr.get("authoredOn") == expected["authored"]
        assert "urn:uuid" not in repr(mr)  # nothing points into the upstream bundle


def _bundle(*resources: dict[str, Any], group: dict[str, Any] | None = None) -> dict[str, Any]:
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    if group:
        entries.append({"fullUrl": "urn:uuid:g", "search": {"mode": "match"}, "resource": group})
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def _item(**over: Any) -> dict[str, Any]:
    item = {
        "resourceType": "MedicationRequest",
        "id": "i1",
        "status": "active",
        "intent": "order",
        "identifier": [{"system": ITEM_NUMBER_SYSTEM, "value": "ITEM-1"}],
        "groupIdentifier": {"system": ORDER_NUMBER_SYSTEM, "value": "ABC123-A83008-00000A"},
        "medicationCodeableConcept": {"text": "x"},
        "subject": {"reference": "urn:uuid:nowhere"},
    }
    item.update(over)
    return item


def test_nhs_number_argument_is_used_when_the_bundle_names_no_patient() -> None:
    [mr] = medication_requests(_bundle(_item()), nhs_number="9000000009")
    assert mr["subject"]["reference"] == "Patient/9000000009"


def test_missing_patient_everywhere_is_a_shape_error() -> None:
    with pytest.raises(CPTShapeError, match="NHS number"):
        medication_requests(_bundle(_item()))


def test_missing_item_number_is_a_shape_error() -> None:
    with pytest.raises(CPTShapeError, match="item-number"):
        medication_requests(_bundle(_item(identifier=[])), nhs_number="9000000009")


def test_duplicate_item_numbers_are_a_shape_error() -> None:
    with pytest.raises(CPTShapeError, match="share"):
        medication_requests(_bundle(_item(), _item(id="i2")), nhs_number="9000000009")


def test_unknown_status_and_intent_fall_back_safely() -> None:
    group = {
        "resourceType": "RequestGroup",
        "status": "revoked",
        "intent": "bogus",
        "identifier": [{"system": ORDER_NUMBER_SYSTEM, "value": "ABC123-A83008-00000A"}],
    }
    [mr] = medication_requests(
        _bundle(_item(status="weird", intent="also-weird"), group=group), nhs_number="9000000009"
    )
    assert (mr["status"], mr["intent"]) == ("cancelled", "order")
    MedicationRequest.model_validate(mr)


def test_unresolvable_bundle_reference_is_dropped_not_left_dangling() -> None:
    [mr] = medication_requests(_bundle(_item(requester={"reference": "urn:uuid:gone"})), nhs_number="9000000009")
    assert "requester" not in mr


def test_not_a_bundle_is_a_shape_error() -> None:
    with pytest.raises(CPTShapeError):
        medication_requests({"resourceType": "OperationOutcome"})
    with pytest.raises(CPTShapeError):
        prescription_refs(["not", "a", "bundle"])


def test_search_row_without_prescription_id_is_a_shape_error() -> None:
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "RequestGroup", "identifier": []}}]}
    with pytest.raises(CPTShapeError, match="prescription-order-number"):
        prescription_refs(bundle)


def test_repeat_information_without_issue_number_is_a_shape_error() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "RequestGroup",
                    "identifier": [{"system": ORDER_NUMBER_SYSTEM, "value": "X"}],
                    "extension": [{"url": REPEAT_INFORMATION, "extension": []}],
                }
            }
        ],
    }
    with pytest.raises(CPTShapeError, match="numberOfRepeatsIssued"):
        prescription_refs(bundle)
