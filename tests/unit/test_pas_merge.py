"""PAS copy + PDS: PDS wins for what it holds, PAS-only data stays, restrictions hold."""

from __future__ import annotations

import copy

from server.pas.merge import merge_with_pds, withhold

HN = {"system": "https://pas.example.org/Id/hospital-number", "value": "H1"}
ETHNIC = {
    "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory",
    "valueCodeableConcept": {"coding": [{"code": "A"}]},
}
PAS = {
    "resourceType": "Patient",
    "id": "pas-H1",
    "identifier": [HN, {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
    "name": [{"family": "Smyth", "given": ["Jane"]}],
    "birthDate": "2010-10-22",
    "gender": "female",
    "address": [{"line": ["old"], "postalCode": "LS1 1AA"}],
    "telecom": [{"system": "phone", "value": "0111"}],
    "generalPractitioner": [{"identifier": {"value": "A00001"}}],
    "extension": [ETHNIC],
}


def pds(security: str, **fields: object) -> dict:
    return {
        "resourceType": "Patient",
        "id": "9000000009",
        "meta": {
            "versionId": "2",
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": security}],
        },
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009", "extension": [{}]}],
        **fields,
    }


def test_pds_wins_for_what_it_holds_and_pas_only_data_stays() -> None:
    before = copy.deepcopy(PAS)
    merged = merge_with_pds(
        PAS,
        pds("U", name=[{"family": "Smith", "given": ["Jane"]}], address=[{"line": ["new"], "postalCode": "LS1 6AE"}]),
    )
    assert PAS == before  # pure
    assert merged["name"] == [{"family": "Smith", "given": ["Jane"]}]
    assert merged["address"][0]["line"] == ["new"]
    assert merged["telecom"] == PAS["telecom"]  # PDS holds none: the PAS copy is kept
    assert merged["extension"] == [ETHNIC]
    assert merged["identifier"][0] == HN and merged["identifier"][1]["extension"] == [{}]
    assert merged["meta"]["security"][0]["code"] == "U" and "versionId" not in merged["meta"]


def test_restricted_patient_is_not_back_filled() -> None:
    merged = merge_with_pds(PAS, pds("R", name=[{"family": "Smith"}], birthDate="2010-10-22"))
    for withheld in ("address", "telecom", "generalPractitioner"):
        assert withheld not in merged
    assert merged["name"] == [{"family": "Smith"}] and merged["extension"] == [ETHNIC]


def test_very_restricted_patient_loses_name_and_birth_date_too() -> None:
    merged = merge_with_pds(PAS, pds("V"))
    for withheld in ("address", "telecom", "generalPractitioner", "name", "birthDate"):
        assert withheld not in merged
    assert merged["identifier"][0] == HN


def test_withhold_without_pds_uses_the_known_label() -> None:
    assert withhold(PAS, None) == PAS
    assert "address" not in withhold(PAS, "R")
