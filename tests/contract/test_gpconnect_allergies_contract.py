"""Contract: GP Connect's own allergy examples (nhs-examples/gpconnect), read in place.

The STU3 response converts to exactly the R4 allergies it describes, each valid R4,
and the request example is exactly the Parameters body the client sends.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from server.sources.gpconnect.client import parse_structured_record, structured_record_parameters
from server.sources.gpconnect.mapping import allergies_from_structured_record
from tests.support.fhir_validation import validate_r4
from tests.support.shared import example_files

NHS = "9999999999"  # the example's patient
CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _response() -> dict[str, Any]:
    (path,) = example_files("gpconnect/allergies_response1_STU3.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _by_code(allergies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["code"]["coding"][0]["code"]: a for a in allergies}


def test_example_response_is_accepted_where_data_enters() -> None:
    body = _response()
    assert parse_structured_record(body, NHS) is body


def test_example_converts_to_its_four_allergies_each_valid_r4() -> None:
    out = allergies_from_structured_record(_response(), NHS, include_resolved=True)
    assert sorted(_by_code(out.allergies)) == ["196461000000101", "256349002", "319773006", "323509004"]
    for allergy in out.allergies:
        validate_r4(allergy)
        assert FHIR_ID.match(allergy["id"]) and allergy["id"].startswith(f"gpc-{NHS}-")
        assert allergy["patient"] == {
            "reference": f"Patient/{NHS}",
            "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS},
        }
    assert len({a["id"] for a in out.allergies}) == 4
    # The active List names 561850bd-..., which the example bundle does not contain.
    assert any("not in the record" in w for w in out.warnings)


def test_without_resolved_switch_the_resolved_list_is_ignored() -> None:
    out = allergies_from_structured_record(_response(), NHS, include_resolved=False)
    assert sorted(_by_code(out.allergies)) == ["196461000000101", "256349002", "323509004"]


def test_amoxicillin_converts_exactly() -> None:
    amox = _by_code(allergies_from_structured_record(_response(), NHS, include_resolved=True).allergies)["323509004"]
    sctdescid = "http://hl7.org/fhir/StructureDefinition/coding-sctdescid"
    assert {k: v for k, v in amox.items() if k != "id"} == {
        "resourceType": "AllergyIntolerance",
        "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-AllergyIntolerance"]},
        "identifier": [{"system": "https://provider.nhs.uk/data-identifier", "value": "83426283749639"}],
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active", "display": "Active"}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "unconfirmed", "display": "Unconfirmed"}]},
        "type": "allergy",
        "category": ["medication"],
        "criticality": "low",
        "code": {
            "coding": [
                {
                    "display": "Amoxicillin 250mg capsules",
                    "code": "323509004",
                    "system": "http://snomed.info/sct",
                    "extension": [{"url": sctdescid, "valueId": "56966201000001112"}],
                }
            ]
        },
        "patient": {
            "reference": f"Patient/{NHS}",
            "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS},
        },
        "recordedDate": "2012-05-07T00:00:00+00:00",
        "recorder": {
            "type": "Practitioner",
            "identifier": {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "G13579135"},
            "display": "Miss Nichole Gilbert",
        },
        "note": [{"text": "Certainty: Likely, Severity: Minimal, NOTES: Some freetext notes"}],
        "reaction": [
            {
                "manifestation": [
                    {
                        "coding": [
                            {
                                "display": "O/E - itchy rash",
                                "code": "304386008",
                                "system": "http://snomed.info/sct",
                                "extension": [{"url": sctdescid, "valueId": "446685017"}],
                            }
                        ]
                    }
                ],
                "severity": "mild",
            }
        ],
    }


def test_peanut_keeps_text_and_chosen_description_term() -> None:
    peanut = _by_code(allergies_from_structured_record(_response(), NHS, include_resolved=True).allergies)["256349002"]
    assert peanut["code"]["text"] == "Nut allergy"
    assert {
        "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-CodingSCTDescDisplay",
        "valueString": "Peanut",
    } in peanut["code"]["coding"][0]["extension"]
    assert peanut["category"] == ["environment"] and peanut["criticality"] == "high"
    assert peanut["reaction"][0]["manifestation"][0]["text"] == "Anaphalactic shock"
    assert peanut["reaction"][0]["severity"] == "severe"


def test_transfer_degraded_record_is_kept_as_sent_and_flagged() -> None:
    out = allergies_from_structured_record(_response(), NHS, include_resolved=True)
    degraded = _by_code(out.allergies)["196461000000101"]
    assert degraded["code"]["text"] == "Allergy to paracetemol"
    assert [c["code"] for c in degraded["code"]["coding"]] == ["196461000000101"]
    assert "reaction" not in degraded and degraded["recordedDate"] == "2016-01-08T11:57:34+00:00"
    assert any("transfer-degraded" in w for w in out.warnings)


def test_contained_resolved_allergy_keeps_its_end() -> None:
    aspirin = _by_code(allergies_from_structured_record(_response(), NHS, include_resolved=True).allergies)["319773006"]
    status = aspirin["clinicalStatus"]
    assert status["coding"] == [{"system": CLINICAL, "code": "resolved", "display": "Resolved"}]
    assert status["extension"] == [
        {
            "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AllergyIntoleranceEnd",
            "extension": [
                {"url": "endDate", "valueDateTime": "2018-03-01"},
                {"url": "reasonEnded", "valueString": "Patient reports no subsequent recurrence on same medication"},
            ],
        }
    ]
    assert aspirin["type"] == "intolerance" and aspirin["reaction"][0]["severity"] == "severe"
    assert aspirin["identifier"] == [{"system": "https://provider.nhs.uk/data-identifier", "value": "83426283749629"}]


def test_ids_are_stable_across_conversions() -> None:
    first = allergies_from_structured_record(_response(), NHS, include_resolved=True)
    second = allergies_from_structured_record(_response(), NHS, include_resolved=True)
    assert [a["id"] for a in first.allergies] == [a["id"] for a in second.allergies]


def test_request_example_is_the_body_the_client_sends() -> None:
    (path,) = example_files("gpconnect/allergies_request1.json.txt")
    text = "\n".join(
        line for line in path.read_text(encoding="utf-8").splitlines() if not line.strip().startswith("{%")
    )  # Jekyll highlight tags around the JSON
    assert json.loads(text) == structured_record_parameters(NHS, include_resolved=True)


@pytest.mark.parametrize("other", ["9000000009", "9000000017"])
def test_example_record_is_refused_for_another_patient(other: str) -> None:
    from server.nhs.errors import UpstreamBadResponse

    with pytest.raises(UpstreamBadResponse):
        parse_structured_record(_response(), other)
